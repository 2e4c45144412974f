// The Webhooks view: the signed-in user's webhook routes (docs/protocol/tunnels.md §2) and, per route, a live feed of
// the requests it received with replay (docs/protocol/webhooks.md §2). Only the public API with the user's bearer
// token. Payload data (headers, query, bodies) only ever reaches the page as text nodes, never as markup.

import { api, ApiError } from "./api.js";
import { openStream } from "./sse.js";

const $ = (id) => document.getElementById(id);
const ROUTES = "/gateway/v1/integrations/routes";
const POLL_MS = 5000;
const FEED_LIMIT = 100;
const PROVIDERS = ["github", "stripe", "slack", "hmac_sha256"];
const TIMED = ["stripe", "slack"];
const DELIVERY_TONE = { live: "ok", delivered: "ok", buffered: "warn", rejected: "bad" };

let ui = null; // helpers from app.js: el, modal, errorText, ago, devices()

const state = {
  routes: [],
  selected: null, // route id
  records: [], // the selected route's records, newest first
  detail: null, // request id shown in the detail panel
  stream: null,
  timer: null,
  visible: false,
};

export function initWebhooks(helpers) {
  ui = helpers;
  $("new-route").addEventListener("click", createDialog);
  $("refresh-routes").addEventListener("click", () => loadRoutes());
}

export function showWebhooks() {
  state.visible = true;
  loadRoutes();
  if (!state.timer) state.timer = setInterval(() => document.visibilityState === "visible" && loadRoutes(true), POLL_MS);
  if (state.selected && !state.stream) openFeed(state.selected);
}

export function hideWebhooks() {
  state.visible = false;
  clearInterval(state.timer);
  state.timer = null;
  closeFeed();
}

function path(routeId, suffix = "") {
  return `${ROUTES}/${encodeURIComponent(routeId)}${suffix}`;
}

function el(...args) {
  return ui.el(...args);
}

function bufferSupported() {
  return state.routes.some((route) => Object.prototype.hasOwnProperty.call(route, "buffer"));
}

// -- the route list -------------------------------------------------------------------------------------------------

async function loadRoutes(quiet = false) {
  try {
    const { routes } = await api(ROUTES);
    state.routes = routes;
    $("routes-error").textContent = "";
    renderRoutes();
    const current = state.routes.find((r) => r.route_id === state.selected);
    if (current) renderRouteFacts(current);
    else if (state.selected) closePanel();
  } catch (err) {
    if (!quiet) $("routes-error").textContent = ui.errorText(err);
  }
}

function tokenAge(route) {
  if (!route.token_expires_at) return "—";
  const expires = Date.parse(route.token_expires_at);
  const issued = expires - route.token_max_age_days * 86400000;
  const days = Math.round((expires - Date.now()) / 86400000);
  const left = days < 0 ? "expired" : `expires in ${days}d`;
  return `issued ${ui.ago(new Date(issued).toISOString())} · ${left}`;
}

function verifyText(route) {
  const v = route.verify;
  if (!v) return "off";
  return v.provider === "hmac_sha256" && v.header ? `hmac_sha256 (${v.header})` : v.provider;
}

function deviceText(route) {
  if (!route.device_id) return "—"; // route responses do not carry the device (docs/protocol/tunnels.md §1)
  const device = ui.devices().find((d) => d.device_id === route.device_id);
  return (device && device.display_name) || route.device_id;
}

function statusPill(route) {
  const tone = route.status === "active" ? "ok" : route.status === "inactive" ? "bad" : "warn";
  return el("span", { class: `pill ${tone}`, "data-route-status": "" }, route.status);
}

function tunnelCell(route) {
  const held = route.status === "active";
  return el("span", { class: "tunnel", "data-tunnel": held ? "connected" : "none" },
    el("span", { class: `dot ${held ? "online" : ""}` }), held ? "Connected" : "No tunnel");
}

function renderRoutes() {
  const table = $("route-table");
  $("routes-empty").hidden = state.routes.length > 0;
  table.hidden = state.routes.length === 0;
  const head = ["Route", "Device", "Interface", "Status", "Tunnel", "Verify", "Bodies", "Token", ""];
  table.replaceChildren(el("table", { class: "grid routes" },
    el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...state.routes.map((route) => el("tr", {
      "data-route": route.route_id,
      class: route.route_id === state.selected ? "selected" : "",
    },
      el("td", {}, el("code", {}, route.route_id)),
      el("td", {}, deviceText(route)),
      el("td", {}, route.interface_id ? `${route.interface_type} · ${route.interface_id}` : route.interface_type),
      el("td", {}, statusPill(route)),
      el("td", {}, tunnelCell(route)),
      el("td", {}, verifyText(route)),
      el("td", {}, route.inspect && route.inspect.capture_bodies ? "captured" : "not kept"),
      el("td", { class: "small" }, tokenAge(route)),
      el("td", { class: "actions" }, el("button", {
        type: "button",
        class: route.route_id === state.selected ? "primary" : "",
        "aria-label": `Open route ${route.route_id}`,
        onclick: () => selectRoute(route.route_id),
      }, "Open")),
    ))),
  ));
}

// -- create, rotate: the token is shown once ------------------------------------------------------------------------

function field(id, label, input, hint) {
  input.id = id;
  const nodes = [el("label", { for: id }, label), input];
  if (hint) nodes.push(el("p", { class: "muted small hint" }, hint));
  return nodes;
}

function numberInput(value, min, max) {
  return el("input", { type: "number", min: String(min), max: String(max), step: "1", value: String(value), required: "" });
}

function checkbox(id, label, checked) {
  const box = el("input", { type: "checkbox", id, checked: checked ? "" : null });
  return { box, node: el("label", { class: "check", for: id }, box, ` ${label}`) };
}

function integer(input, name) {
  const text = input.value.trim();
  if (!/^-?\d+$/.test(text)) throw new ApiError(400, { error: { message: `${name} must be a whole number` } });
  return Number(text);
}

// Provider, secret and header inputs; `current` is the route's shown `verify` (or null) when editing.
function verifyFields(prefix, current) {
  const provider = el("select", {},
    el("option", { value: "" }, "Off"),
    ...PROVIDERS.map((p) => el("option", { value: p, selected: current && current.provider === p ? "" : null }, p)));
  const secret = el("input", {
    type: "password",
    autocomplete: "new-password",
    placeholder: current ? "Leave empty to keep the current secret" : "8-512 characters",
  });
  const header = el("input", { placeholder: "x-signature", value: (current && current.header) || "" });
  const tolerance = numberInput((current && current.tolerance_seconds) || 300, 1, 3600);
  const headerRow = el("div", {}, ...field(`${prefix}-verify-header`, "Signature header (hmac_sha256)", header));
  const toleranceRow = el("div", {}, ...field(`${prefix}-verify-tolerance`, "Timestamp tolerance (seconds)", tolerance));
  const secretRow = el("div", {}, ...field(`${prefix}-verify-secret`, "Signing secret (write-only, never shown again)", secret));
  const sync = () => {
    secretRow.hidden = !provider.value;
    headerRow.hidden = provider.value !== "hmac_sha256";
    toleranceRow.hidden = !TIMED.includes(provider.value);
  };
  provider.addEventListener("change", sync);
  sync();
  const nodes = [...field(`${prefix}-verify-provider`, "Provider", provider), secretRow, headerRow, toleranceRow];

  // The `verify` value to send, or undefined to leave it as it is (docs/protocol/webhooks.md §1: an object replaces
  // it whole and must carry the secret again; null turns it off).
  function value() {
    if (!provider.value) return current ? null : undefined;
    const wanted = { provider: provider.value };
    if (provider.value === "hmac_sha256") wanted.header = header.value.trim();
    if (TIMED.includes(provider.value)) wanted.tolerance_seconds = integer(tolerance, "Timestamp tolerance");
    const unchanged = current && current.provider === wanted.provider
      && (current.header || "") === (wanted.header || "")
      && (current.tolerance_seconds || 0) === (wanted.tolerance_seconds || 0);
    if (!secret.value) {
      if (unchanged) return undefined;
      throw new ApiError(400, { error: { message: "Enter the signing secret to set or change verification" } });
    }
    return { ...wanted, secret: secret.value };
  }
  return { nodes, value, clearSecret: () => { secret.value = ""; } };
}

function bufferFields(prefix, current) {
  const enabled = checkbox(`${prefix}-buffer-enabled`, "Buffer requests while no tunnel is connected", current && current.enabled);
  const max = numberInput((current && current.max_requests) || 100, 1, 1000);
  const ttl = numberInput((current && current.ttl_seconds) || 3600, 60, 86400);
  const nodes = [
    el("fieldset", { class: "group", "data-buffer": "" },
      el("legend", {}, "Offline buffering"),
      enabled.node,
      ...field(`${prefix}-buffer-max`, "Max buffered requests (1-1000)", max),
      ...field(`${prefix}-buffer-ttl`, "Keep for (seconds, 60-86400)", ttl)),
  ];
  const value = () => ({
    enabled: enabled.box.checked,
    max_requests: integer(max, "Max buffered requests"),
    ttl_seconds: integer(ttl, "Keep for"),
  });
  return { nodes, value };
}

// The shared dialog is a `<form method="dialog">`: Enter in one of its fields would close it unsaved. In these
// dialogs Enter runs the primary action instead.
function enterRunsPrimary() {
  for (const input of $("modal-body").querySelectorAll("input")) {
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      const primary = $("modal-actions").querySelector("button.primary");
      if (primary) primary.click();
    });
  }
}

function createDialog() {
  const owned = ui.devices().filter((d) => (d.role || "owner") === "owner");
  if (!owned.length) {
    ui.modal("New Route", [el("p", { class: "muted" }, "You don't own any devices yet. A route delivers to one of your devices: start its agent or tunnel client once, then come back.")], [{ label: "Close" }]);
    return;
  }
  const device = el("select", {}, ...owned.map((d) => el("option", { value: d.device_id }, d.display_name || d.device_id)));
  const type = el("input", { value: "http", pattern: "[a-z][a-z0-9_]{0,31}", required: "" });
  const label = el("input", { placeholder: "optional" });
  const deadline = numberInput(2500, 500, 10000);
  const maxBody = numberInput(1048576, 1024, 5242880);
  const verify = verifyFields("create", null);
  const capture = checkbox("create-capture", "Capture request bodies (kept for the inspector, up to 64 KiB each)", false);
  const buffer = bufferSupported() ? bufferFields("create", null) : null;
  ui.modal("New Route", [
    ...field("create-device", "Device", device),
    ...field("create-type", "Interface type", type, "Lowercase letters, digits and _ (for example http, github, slack_events)."),
    ...field("create-interface-id", "Interface ID (a label of your own)", label),
    el("div", { class: "two" },
      el("div", {}, ...field("create-deadline", "Deadline (ms, 500-10000)", deadline)),
      el("div", {}, ...field("create-max-body", "Max body (bytes, 1024-5242880)", maxBody))),
    el("fieldset", { class: "group" }, el("legend", {}, "Signature verification"), ...verify.nodes),
    capture.node,
    ...(buffer ? buffer.nodes : []),
  ], [
    { label: "Cancel" },
    {
      label: "Create",
      primary: true,
      onClick: async () => {
        const body = {
          device_id: device.value,
          interface_type: type.value.trim(),
          deadline_ms: integer(deadline, "Deadline"),
          max_body_bytes: integer(maxBody, "Max body"),
          inspect: { capture_bodies: capture.box.checked },
        };
        if (label.value.trim()) body.interface_id = label.value.trim();
        const v = verify.value();
        if (v) body.verify = v;
        if (buffer) body.buffer = buffer.value();
        const created = await api(ROUTES, { method: "POST", body });
        state.selected = created.route.route_id;
        await loadRoutes();
        selectRoute(created.route.route_id);
        showTokenOnce("Route created", created.public_url, created.route_token);
        return false;
      },
    },
  ]);
  enterRunsPrimary();
}

function copyRow(id, text, status) {
  const input = el("input", { id, readonly: "", value: text, "aria-label": id === "once-url" ? "Public URL" : "Route token" });
  const button = el("button", {
    type: "button",
    "data-copy": id,
    onclick: async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(text);
        status.textContent = id === "once-url" ? "Public URL copied to the clipboard." : "Token copied to the clipboard.";
      } catch {
        status.textContent = "Copying is not allowed here: select the text and copy it.";
      }
    },
  }, "Copy");
  return el("div", { class: "copy-row" }, input, button);
}

function showTokenOnce(title, url, token, extra = null) {
  const status = el("p", { class: "muted", id: "copy-status", role: "status" });
  ui.modal(title, [
    el("p", { class: "warning", role: "alert" }, "Copy the public URL now: it contains the route's token, which will not be shown again."),
    el("label", { for: "once-url" }, "Public URL (send webhooks here)"),
    copyRow("once-url", url, status),
    el("label", { for: "once-token" }, "Route token"),
    copyRow("once-token", token, status),
    ...(extra ? [extra] : []),
    status,
  ], [{ label: "Done" }]);
}

function rotateDialog(route) {
  const grace = numberInput(300, 0, 1800);
  ui.modal("Rotate the token?", [
    el("p", {}, "A new token and public URL are made. The current URL keeps working for the grace period, then stops."),
    ...field("rotate-grace", "Grace period (seconds, 0-1800)", grace),
  ], [
    { label: "Cancel" },
    {
      label: "Rotate",
      primary: true,
      onClick: async () => {
        const rotated = await api(path(route.route_id, "/rotate-token"), {
          method: "POST",
          body: { grace_seconds: integer(grace, "Grace period") },
        });
        const extra = rotated.previous_token_expires_at
          ? el("p", { class: "muted small" }, `The previous URL works until ${rotated.previous_token_expires_at}.`)
          : el("p", { class: "muted small" }, "The previous URL stopped working.");
        showTokenOnce("Token rotated", rotated.public_url, rotated.route_token, extra);
        loadRoutes();
        return false;
      },
    },
  ]);
  enterRunsPrimary();
}

function deleteDialog(route) {
  ui.modal("Delete this route?", [
    el("p", {}, "Its public URL stops working at once, a connected tunnel is told, and its request records can no longer be read."),
    el("p", {}, el("code", {}, route.route_id)),
  ], [
    { label: "Cancel" },
    {
      label: "Delete",
      primary: true,
      onClick: async () => {
        await api(path(route.route_id), { method: "DELETE" });
        closePanel();
        await loadRoutes();
      },
    },
  ]);
}

// -- one route: settings and actions --------------------------------------------------------------------------------

function closePanel() {
  closeFeed();
  state.selected = null;
  state.records = [];
  state.detail = null;
  $("route-panel").hidden = true;
  renderRoutes();
}

function selectRoute(routeId) {
  const route = state.routes.find((r) => r.route_id === routeId);
  if (!route) return;
  if (state.selected !== routeId || !state.stream) {
    closeFeed();
    state.selected = routeId;
    state.records = [];
    state.detail = null;
    openFeed(routeId);
  }
  renderRoutes();
  renderPanel(route);
  $("route-panel").hidden = false;
}

function renderRouteFacts(route) {
  $("route-title").textContent = route.route_id;
  $("route-facts").replaceChildren(el("dl", { class: "facts" },
    el("dt", {}, "Status"), el("dd", {}, statusPill(route)),
    el("dt", {}, "Tunnel"), el("dd", {}, tunnelCell(route)),
    el("dt", {}, "Device"), el("dd", {}, deviceText(route)),
    el("dt", {}, "Interface"), el("dd", {}, route.interface_id ? `${route.interface_type} · ${route.interface_id}` : route.interface_type),
    el("dt", {}, "Verification"), el("dd", { "data-verify": "" }, verifyText(route)),
    el("dt", {}, "Token"), el("dd", {}, tokenAge(route)),
    el("dt", {}, "Last used"), el("dd", {}, route.token_last_used_at ? ui.ago(route.token_last_used_at) : "never"),
  ));
  const toggle = $("route-toggle");
  toggle.textContent = route.status === "inactive" ? "Enable" : "Disable";
  toggle.className = route.status === "inactive" ? "" : "danger";
}

function renderPanel(route) {
  renderRouteFacts(route);
  const deadline = numberInput(route.deadline_ms, 500, 10000);
  const maxBody = numberInput(route.max_body_bytes, 1024, 5242880);
  const capture = checkbox("edit-capture", "Capture request bodies", route.inspect && route.inspect.capture_bodies);
  const verify = verifyFields("edit", route.verify);
  const hasBuffer = Object.prototype.hasOwnProperty.call(route, "buffer");
  const buffer = hasBuffer ? bufferFields("edit", route.buffer) : null;
  const error = el("p", { class: "error", role: "alert", id: "route-error" });
  const saved = el("span", { class: "muted small", role: "status", id: "route-saved" });
  const form = el("form", { class: "settings", id: "route-form", novalidate: "" },
    el("div", { class: "two" },
      el("div", {}, ...field("edit-deadline", "Deadline (ms, 500-10000)", deadline)),
      el("div", {}, ...field("edit-max-body", "Max body (bytes, 1024-5242880)", maxBody))),
    capture.node,
    el("fieldset", { class: "group" }, el("legend", {}, "Signature verification"), ...verify.nodes),
    ...(buffer ? buffer.nodes : []),
    error,
    el("div", { class: "form-actions" }, saved, el("button", { type: "submit", class: "primary" }, "Save")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    saved.textContent = "";
    try {
      const body = {
        deadline_ms: integer(deadline, "Deadline"),
        max_body_bytes: integer(maxBody, "Max body"),
        inspect: { capture_bodies: capture.box.checked },
      };
      const v = verify.value();
      if (v !== undefined) body.verify = v;
      if (buffer) body.buffer = buffer.value();
      const { route: updated } = await api(path(route.route_id), { method: "PUT", body });
      verify.clearSecret();
      replaceRoute(updated);
      renderPanel(updated);
      $("route-saved").textContent = "Saved.";
    } catch (err) {
      error.textContent = ui.errorText(err);
    }
  });
  $("route-settings").replaceChildren(form);
  $("route-rotate").onclick = () => rotateDialog(currentRoute());
  $("route-delete").onclick = () => deleteDialog(currentRoute());
  $("route-toggle").onclick = () => toggleStatus(currentRoute());
  $("route-action-error").textContent = "";
}

function currentRoute() {
  return state.routes.find((r) => r.route_id === state.selected);
}

function replaceRoute(updated) {
  state.routes = state.routes.map((r) => (r.route_id === updated.route_id ? updated : r));
  renderRoutes();
}

async function toggleStatus(route) {
  $("route-action-error").textContent = "";
  try {
    const status = route.status === "inactive" ? "provisioned" : "inactive";
    const { route: updated } = await api(path(route.route_id), { method: "PUT", body: { status } });
    replaceRoute(updated);
    renderRouteFacts(updated);
  } catch (err) {
    $("route-action-error").textContent = ui.errorText(err);
  }
}

// -- the live request feed ------------------------------------------------------------------------------------------

function closeFeed() {
  if (state.stream) state.stream.close();
  state.stream = null;
}

function openFeed(routeId) {
  const pill = $("feed-live");
  const labels = { connecting: "Connecting...", live: "Live", error: "Stream error", closed: "Disconnected", reconnecting: "Connecting..." };
  state.stream = openStream(path(routeId, "/requests/events"), {
    onStatus: (status) => {
      if (state.selected !== routeId) return;
      pill.textContent = labels[status] || status;
      pill.className = `pill ${status === "live" ? "ok" : status === "error" || status === "closed" ? "bad" : ""}`;
      if (status === "live") loadRecords(routeId); // fills in what came before or between connections
    },
    onEvent: (event, record) => {
      if (event === "request" && state.selected === routeId) upsert(record);
    },
  });
}

async function loadRecords(routeId) {
  try {
    const { requests } = await api(`${path(routeId, "/requests")}?limit=${FEED_LIMIT}`);
    if (state.selected !== routeId) return;
    for (const record of [...requests].reverse()) upsert(record, false);
    renderFeed();
    $("feed-error").textContent = "";
  } catch (err) {
    $("feed-error").textContent = ui.errorText(err);
  }
}

function upsert(record, render = true) {
  const index = state.records.findIndex((r) => r.request_id === record.request_id);
  if (index >= 0) state.records[index] = record;
  else state.records.unshift(record);
  state.records.sort((a, b) => (a.received_at < b.received_at ? 1 : a.received_at > b.received_at ? -1 : 0));
  state.records.length = Math.min(state.records.length, FEED_LIMIT);
  if (render) {
    renderFeed();
    if (state.detail === record.request_id) renderDetail(record);
  }
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1048576) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function verifiedText(record) {
  return record.verified === true ? "verified" : record.verified === false ? "bad signature" : "";
}

function statusTone(status) {
  return status < 300 ? "ok" : status < 500 ? "warn" : "bad";
}

function renderFeed() {
  $("feed-empty").hidden = state.records.length > 0;
  $("feed").replaceChildren(...state.records.map((record) => el("li", {},
    el("button", {
      type: "button",
      class: `feed-item ${state.detail === record.request_id ? "selected" : ""}`,
      "data-request": record.request_id,
      "aria-label": `${record.method} ${record.status} ${record.received_at}`,
      onclick: () => openDetail(record.request_id),
    },
      el("span", { class: "method" }, record.method),
      el("span", { class: `pill ${statusTone(record.status)}`, "data-status": "" }, String(record.status)),
      el("span", { class: `pill ${DELIVERY_TONE[record.delivery] || ""}`, "data-delivery": "" }, record.delivery),
      record.verified === null || record.verified === undefined ? null
        : el("span", { class: `pill ${record.verified ? "ok" : "bad"}`, "data-verified": "" }, verifiedText(record)),
      record.replay_of ? el("span", { class: "pill", "data-replay": "" }, "replay") : null,
      el("span", { class: "grow" }),
      el("span", { class: "meta" }, `${record.duration_ms} ms · ${size(record.body_size)} · ${ui.ago(record.received_at)}`),
    ))));
}

function openDetail(requestId) {
  state.detail = requestId;
  renderFeed();
  const record = state.records.find((r) => r.request_id === requestId);
  if (record) renderDetail(record);
}

function decodeBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

function hex(bytes) {
  const lines = [];
  for (let offset = 0; offset < bytes.length; offset += 16) {
    const row = [...bytes.slice(offset, offset + 16)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    lines.push(`${offset.toString(16).padStart(6, "0")}  ${row}`);
  }
  return lines.join("\n");
}

function bodyView(record) {
  if (record.body_truncated) return el("p", { class: "muted" }, "The body was over 64 KiB and was not kept.");
  if (record.body_base64 === undefined) {
    return el("p", { class: "muted" }, record.body_size ? "Bodies are not captured for this route." : "No body.");
  }
  let bytes;
  try {
    bytes = decodeBase64(record.body_base64);
  } catch {
    return el("p", { class: "error" }, "The stored body could not be decoded.");
  }
  if (!bytes.length) return el("p", { class: "muted" }, "Empty body.");
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    let shown = text;
    try {
      shown = JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      shown = text;
    }
    return el("pre", { class: "payload", "data-body": "text" }, shown);
  } catch {
    return el("div", {}, el("p", { class: "muted small" }, `Binary body (${bytes.length} bytes), shown as hex:`),
      el("pre", { class: "payload", "data-body": "hex" }, hex(bytes)));
  }
}

function headerTable(headers) {
  const entries = Object.entries(headers || {});
  if (!entries.length) return el("p", { class: "muted" }, "None.");
  return el("table", { class: "grid headers" }, el("tbody", {}, ...entries.map(([name, value]) =>
    el("tr", {}, el("th", { scope: "row" }, name), el("td", {}, String(value))))));
}

function renderDetail(record) {
  const error = el("p", { class: "error", role: "alert", id: "replay-error" });
  const replay = el("button", {
    type: "button",
    class: "primary",
    id: "replay",
    onclick: async () => {
      error.textContent = "";
      replay.disabled = true;
      try {
        const created = await api(path(state.selected, `/requests/${encodeURIComponent(record.request_id)}/replay`), { method: "POST" });
        upsert(created);
        openDetail(created.request_id);
      } catch (err) {
        error.textContent = ui.errorText(err);
      } finally {
        replay.disabled = false;
      }
    },
  }, "Replay");
  const response = record.response || {};
  $("request-detail").replaceChildren(
    el("div", { class: "chat-head" }, el("strong", {}, `${record.method} · ${record.status}`), replay),
    error,
    el("dl", { class: "facts" },
      el("dt", {}, "Request"), el("dd", {}, el("code", {}, record.request_id)),
      el("dt", {}, "Received"), el("dd", {}, record.received_at),
      el("dt", {}, "Delivery"), el("dd", {}, record.delivery),
      el("dt", {}, "Signature"), el("dd", {}, verifiedText(record) || "not checked"),
      el("dt", {}, "Duration"), el("dd", {}, `${record.duration_ms} ms`),
      el("dt", {}, "Size"), el("dd", {}, size(record.body_size)),
      el("dt", {}, "Query"), el("dd", { "data-query": "" }, record.query ? `?${record.query}` : "—"),
      record.replay_of ? [el("dt", {}, "Replay of"), el("dd", {}, el("code", {}, record.replay_of))] : null,
    ),
    el("h4", {}, "Request headers"),
    headerTable(record.headers),
    el("h4", {}, "Body"),
    bodyView(record),
    el("h4", {}, "Response"),
    el("dl", { class: "facts" },
      el("dt", {}, "Status"), el("dd", {}, String(response.status ?? record.status)),
      el("dt", {}, "Body size"), el("dd", {}, size(response.body_size || 0))),
    headerTable(response.headers),
  );
  $("request-detail").hidden = false;
}
