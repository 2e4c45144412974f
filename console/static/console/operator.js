// The operator console (docs/operations.md): live totals with small charts, users, devices and routes across users,
// and actions that each ask for confirmation. The session is an HttpOnly cookie this script never sees; every call
// that changes something carries the session's CSRF token in X-Operator-CSRF.

import { authorizedFetch, loadTokens } from "./api.js";
import { renderCharts, WINDOW_SECONDS } from "./charts.js";

const $ = (id) => document.getElementById(id);
const API = "/console/operator/api";
const REFRESH_MS = 5000;

const state = { csrf: "", samples: [], timer: null, view: "live", routed: false };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

function notice(text, bad = false) {
  $("notice").textContent = text;
  $("notice").classList.toggle("bad", bad);
  $("notice").hidden = !text;
}

class OperatorError extends Error {
  constructor(status, body) {
    const error = body && body.error;
    super(typeof error === "string" ? error : (error && error.message) || `The request failed (HTTP ${status}).`);
    this.status = status;
  }
}

async function call(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-Operator-CSRF"] = state.csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(API + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  } catch {
    throw new OperatorError(0, { error: "The gateway can't be reached." });
  }
  const data = await response.json().catch(() => ({}));
  if (response.status === 401 && path !== "/session") {
    showSignIn("Your operator session has ended. Open a new sign-in link.");
  }
  if (!response.ok) throw new OperatorError(response.status, data);
  return data;
}

// -- confirmation dialog ----------------------------------------------------------------------------------------------

function dialog(title, body, actions) {
  const box = $("confirm");
  $("confirm-title").textContent = title;
  $("confirm-body").replaceChildren(...body);
  $("confirm-error").textContent = "";
  $("confirm-actions").replaceChildren(
    ...actions.map(({ label, kind = "", onClick, action }) =>
      el("button", {
        type: "button",
        class: kind,
        "data-confirm": action || null,
        onclick: async (event) => {
          if (!onClick) return box.close();
          event.target.disabled = true;
          try {
            if ((await onClick()) !== false) box.close();
          } catch (err) {
            $("confirm-error").textContent = err.message;
          } finally {
            event.target.disabled = false;
          }
        },
      }, label),
    ),
  );
  if (!box.open) box.showModal();
}

function confirmAction(title, text, label, run) {
  dialog(title, [el("p", {}, text)], [
    { label: "Cancel" },
    { label, kind: "danger", action: "yes", onClick: run },
  ]);
}

// -- live -------------------------------------------------------------------------------------------------------------

const TILES = [
  ["agents", "Agents connected"],
  ["tunnels", "Tunnels connected"],
  ["streams", "Streams open"],
  ["sessions", "Live sessions"],
  ["users", "Users"],
  ["devices", "Devices"],
  ["routes", "Routes"],
  ["inflight", "Webhooks in flight"],
];

async function loadLive() {
  try {
    const overview = await call("/overview");
    const live = overview.live;
    $("live-tiles").replaceChildren(
      ...TILES.map(([key, label]) =>
        el("div", { class: "tile", "data-tile": key }, el("div", { class: "value" }, String(live[key] ?? 0)), el("div", { class: "label" }, label)),
      ),
    );
    $("fact-node").textContent = overview.node_id;
    $("fact-backend").textContent = overview.state_backend;
    $("fact-auth").textContent = overview.auth_mode;
    const now = Date.now() / 1000;
    state.samples.push({ t: now, agents: live.agents, tunnels: live.tunnels, streams: live.streams, sessions: live.sessions });
    state.samples = state.samples.filter((p) => p.t >= now - WINDOW_SECONDS);
    const history = Array.isArray(overview.history) && overview.history.length ? overview.history : null;
    renderCharts($("charts"), history || state.samples, now);
    $("history-source").textContent = history
      ? "From the gateway's metrics history."
      : "Sampled by this page every 5 s since it opened (the gateway has no history yet: metrics are off, or it just started).";
    $("live-status").textContent = "Live";
    $("live-status").className = "pill ok";
  } catch (err) {
    $("live-status").textContent = "Error";
    $("live-status").className = "pill bad";
    if (err.status !== 401) notice(err.message, true);
  }
}

// -- tables -----------------------------------------------------------------------------------------------------------

function fill(tableId, rows, empty) {
  const body = $(tableId).querySelector("tbody");
  const columns = $(tableId).querySelectorAll("thead th").length;
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: columns, class: "muted" }, empty))]));
}

function badge(text, tone) {
  return el("span", { class: `pill ${tone}` }, text);
}

async function loadUsers() {
  const { users, truncated } = await call("/users");
  fill("users-table", users.map((user) =>
    el("tr", { "data-uid": user.uid },
      el("td", {}, el("code", {}, user.uid)),
      el("td", {}, user.email || "—", user.email && user.email_verified ? " " : null, user.email && user.email_verified ? badge("verified", "ok") : null),
      el("td", {}, `${user.devices}${user.agents_online ? ` (${user.agents_online} online)` : ""}`),
      el("td", { title: user.last_seen_at || "" }, ago(user.last_seen_at)),
      el("td", { class: "actions" },
        el("button", { class: "danger", "data-action": "revoke", onclick: () => revokeUser(user.uid) }, "Revoke all"),
      ),
    ),
  ), "No users yet.");
  if (truncated) notice("Only the first 500 users are listed.");
}

async function loadDevices() {
  const { devices, truncated } = await call("/devices");
  fill("devices-table", devices.map((device) =>
    el("tr", { "data-device": device.device_id },
      el("td", {}, el("div", { class: "name" }, device.display_name), el("code", { class: "muted" }, device.device_id)),
      el("td", {}, device.owner_email || device.owner_uid),
      el("td", {}, device.online ? badge("online", "ok") : badge("offline", ""), device.online ? ` since ${ago(device.connected_at)}` : null),
      el("td", {}, String(device.sessions)),
      el("td", {}, String(device.grants)),
      el("td", { class: "actions" },
        el("button", { class: "danger", "data-action": "disconnect", disabled: device.online ? null : "", onclick: () => disconnect(device.device_id) }, "Disconnect"),
      ),
    ),
  ), "No devices yet.");
  if (truncated) notice("Only the first 500 devices are listed.");
}

async function loadRoutes() {
  const { routes, truncated } = await call("/routes");
  fill("routes-table", routes.map((route) => {
    const answers = route.answers_today || {};
    return el("tr", { "data-route": route.route_id },
      el("td", {}, el("code", {}, route.route_id), el("div", { class: "muted small" }, `${route.interface_type} · ${route.device_id}`)),
      el("td", {}, route.owner_uid),
      el("td", {}, route.disabled ? badge("disabled", "bad") : badge(route.status, route.status === "active" ? "ok" : "")),
      el("td", {}, route.tunnel_connected ? badge("connected", "ok") : badge("no tunnel", "")),
      el("td", { title: route.last_used_at || "" }, ago(route.last_used_at)),
      el("td", { class: "num", "data-count": "buffered" }, String(route.buffered || 0)),
      el("td", { class: "num", "data-count": "recorded" }, String(route.recorded || 0)),
      ...["2xx", "4xx", "5xx", "429"].map((k) => el("td", { class: "num", "data-count": k }, String(answers[k] || 0))),
      el("td", { class: "actions" },
        route.disabled
          ? el("button", { "data-action": "enable", onclick: () => setRoute(route.route_id, false) }, "Enable")
          : el("button", { class: "danger", "data-action": "disable", onclick: () => setRoute(route.route_id, true) }, "Disable"),
        el("button", { "data-action": "rotate", onclick: () => rotate(route.route_id) }, "Rotate"),
      ),
    );
  }), "No webhook routes yet.");
  if (truncated) notice("Only the first 500 routes are listed.");
}

// -- actions ----------------------------------------------------------------------------------------------------------

function disconnect(deviceId) {
  confirmAction("Disconnect agent", `Close the agent socket of ${deviceId}? The agent may reconnect by itself.`, "Disconnect", async () => {
    const result = await call(`/devices/${encodeURIComponent(deviceId)}/disconnect`, { method: "POST" });
    notice(result.disconnected ? `Disconnected the agent of ${deviceId}.` : `${deviceId} had no agent connected.`);
    await loadDevices();
  });
}

function setRoute(routeId, disabled) {
  const verb = disabled ? "Disable" : "Enable";
  const text = disabled
    ? `Disable ${routeId}? Its webhooks will be answered with 503 until it is enabled again.`
    : `Enable ${routeId}? Its webhooks reach its tunnel again.`;
  confirmAction(`${verb} route`, text, verb, async () => {
    await call(`/routes/${encodeURIComponent(routeId)}/${disabled ? "disable" : "enable"}`, { method: "POST" });
    notice(`${routeId} is ${disabled ? "disabled" : "enabled"}.`);
    await loadRoutes();
  });
}

function rotate(routeId) {
  confirmAction("Rotate route token", `Give ${routeId} a new token? The old URL stops working at once.`, "Rotate", async () => {
    const result = await call(`/routes/${encodeURIComponent(routeId)}/rotate-token`, { method: "POST", body: { grace_seconds: 0 } });
    await loadRoutes();
    const field = el("input", { id: "rotated-url", readonly: "", value: result.public_url });
    dialog("New webhook URL", [
      el("p", { class: "muted" }, "Shown once: only a hash of the token is kept. Give it to the route's owner."),
      el("div", { class: "copy-row" }, field, el("button", { type: "button", onclick: () => navigator.clipboard && navigator.clipboard.writeText(field.value) }, "Copy")),
    ], [{ label: "Done", kind: "primary" }]);
    return false;
  });
}

function revokeUser(uid) {
  confirmAction(
    "Revoke everything of this user",
    `Revoke ${uid}'s refresh tokens, the grants they gave and received, their sessions, routes (disabled) and agent sockets? Access tokens already issued stay valid until they expire.`,
    "Revoke",
    async () => {
      const r = await call("/users/revoke", { method: "POST", body: { uid } });
      notice(`Revoked ${uid}: ${r.refresh_tokens} refresh token(s), ${r.grants} grant(s), ${r.sessions} session(s), ${r.routes} route(s), ${r.agents} agent(s).`);
      await loadUsers();
    },
  );
}

// -- views and signing in ---------------------------------------------------------------------------------------------

const LOADERS = { live: loadLive, users: loadUsers, devices: loadDevices, routes: loadRoutes };

function route() {
  const view = (location.hash.match(/^#\/(\w+)/) || [])[1];
  state.view = LOADERS[view] ? view : "live";
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${state.view}`;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === state.view);
  LOADERS[state.view]().catch((err) => err.status !== 401 && notice(err.message, true));
}

function showSignIn(error = "") {
  clearInterval(state.timer);
  $("app").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = error;
  const box = $("email-sign-in-box");
  box.hidden = document.body.dataset.emailSignIn !== "1";
  $("email-sign-in").onclick = emailSignIn;
}

function showApp(session) {
  state.csrf = session.csrf_token;
  $("signin").hidden = true;
  $("app").hidden = false;
  $("operator-label").textContent = `Operator ${session.operator}`;
  $("session-expiry").textContent = `Session ends ${new Date(session.expires_at).toLocaleTimeString()}`;
  $("sign-out").onclick = signOut;
  for (const button of document.querySelectorAll(".refresh")) button.onclick = route;
  if (!state.routed) window.addEventListener("hashchange", route);
  state.routed = true;
  route();
  clearInterval(state.timer);
  state.timer = setInterval(() => state.view === "live" && loadLive(), REFRESH_MS);
}

async function emailSignIn() {
  if (!loadTokens()) {
    $("signin-error").textContent = "Sign in to the console in this tab first, then come back here.";
    return;
  }
  try {
    const response = await authorizedFetch(`${API}/session`, { method: "POST", headers: { Accept: "application/json" } });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new OperatorError(response.status, data);
    showApp(data);
  } catch (err) {
    $("signin-error").textContent = err.status === 403 ? "This account is not an operator." : err.message;
  }
}

async function signOut() {
  try {
    await call("/session", { method: "DELETE" });
  } catch {
    // the session may have ended already; the page forgets it either way
  }
  state.csrf = "";
  showSignIn("Signed out.");
}

async function start() {
  const token = location.pathname.endsWith("/login") ? location.hash.slice(1) : "";
  if (token) {
    // The link's token leaves the address bar and history before anything else happens.
    history.replaceState(null, "", "/console/operator");
    try {
      return showApp(await call("/session", { method: "POST", body: { token } }));
    } catch (err) {
      return showSignIn(`This sign-in link cannot be used: ${err.message}. Ask for a new one.`);
    }
  }
  if (location.pathname.endsWith("/login")) history.replaceState(null, "", "/console/operator");
  try {
    showApp(await call("/session"));
  } catch (err) {
    showSignIn(err.status === 401 ? "" : err.message);
  }
}

start();
