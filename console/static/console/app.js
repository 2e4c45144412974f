// The console: dashboard, devices (live), end-to-end encrypted sessions, shares and webhooks (webhooks.js).

import { api, ApiError, loadTokens } from "./api.js";
import { completeSignIn, currentUser, signIn, signOut } from "./auth.js";
import * as e2ee from "./e2ee.js";
import { openStream } from "./sse.js";
import { hideWebhooks, initWebhooks, showWebhooks } from "./webhooks.js";

const $ = (id) => document.getElementById(id);
const SHARE_KEY = "gw_console_share";
const DEEPLINK_KEY = "gw_console_deeplink";

const state = {
  devices: [],
  deviceStream: null,
  sessions: new Map(), // session id -> session object (this tab only)
  current: null,
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86400)}d ago`;
}

function notice(text, bad = false) {
  const node = $("notice");
  node.textContent = text;
  node.classList.toggle("bad", bad);
  node.hidden = !text;
}

function errorText(err) {
  return err instanceof ApiError ? err.message : "Something went wrong. Please try again.";
}

// -- modal ----------------------------------------------------------------------------------------------------------

function modal(title, body, actions) {
  const dialog = $("modal");
  $("modal-title").textContent = title;
  $("modal-body").replaceChildren(...body);
  $("modal-error").textContent = "";
  $("modal-actions").replaceChildren(
    ...actions.map(({ label, primary, onClick }) =>
      el("button", {
        type: "button",
        class: primary ? "primary" : "",
        onclick: async () => {
          if (!onClick) return dialog.close();
          try {
            if ((await onClick()) !== false) dialog.close();
          } catch (err) {
            $("modal-error").textContent = errorText(err);
          }
        },
      }, label),
    ),
  );
  if (!dialog.open) dialog.showModal();
}

// -- routing ----------------------------------------------------------------------------------------------------------

function route() {
  const hash = location.hash || "#/dashboard";
  const share = hash.match(/^#\/share\/([A-Za-z0-9_-]+)/);
  if (share) {
    hideWebhooks();
    return showAccept(share[1]);
  }
  const view = (hash.match(/^#\/(\w+)/) || [])[1] || "dashboard";
  show(["dashboard", "devices", "sessions", "shares", "webhooks"].includes(view) ? view : "dashboard");
}

function show(view) {
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === view);
  if (view === "dashboard") loadDashboard();
  if (view === "devices") renderDevices();
  if (view === "shares") loadShares();
  if (view === "webhooks") showWebhooks();
  else hideWebhooks();
}

// -- dashboard ------------------------------------------------------------------------------------------------------

const TILES = [
  ["devices", "Devices"],
  ["agents", "Agents Online"],
  ["sessions", "Sessions"],
  ["routes", "Routes"],
  ["tunnels", "Tunnels"],
  ["inflight", "Inflight"],
  ["grants", "Grants"],
  ["event_backlogs", "Event Backlogs"],
];

async function loadDashboard() {
  try {
    const health = await api("/gateway/v1/health");
    $("tiles").replaceChildren(
      ...TILES.map(([key, label]) =>
        el("div", { class: "tile", "data-tile": key }, el("div", { class: "value" }, String(health[key] ?? 0)), el("div", { class: "label" }, label)),
      ),
    );
    $("cfg-status").textContent = health.status;
    $("cfg-backend").textContent = health.state_backend || "memory";
  } catch (err) {
    notice(errorText(err), true);
  }
}

// -- devices --------------------------------------------------------------------------------------------------------

async function loadDevices() {
  const { devices } = await api("/gateway/v1/devices");
  state.devices = devices;
  renderDevices();
  return devices;
}

function startDeviceStream() {
  if (state.deviceStream) return;
  const labels = { connecting: "Connecting...", live: "Live", error: "SSE error", closed: "Disconnected", reconnecting: "Connecting..." };
  state.deviceStream = openStream("/gateway/v1/devices/events", {
    onStatus: (status) => {
      const pill = $("devices-live");
      pill.textContent = labels[status] || status;
      pill.className = `pill ${status === "live" ? "ok" : status === "error" ? "bad" : ""}`;
    },
    onEvent: (event, data) => {
      const id = data.deviceId || data.device_id;
      const device = state.devices.find((d) => d.device_id === id);
      if (!device) {
        loadDevices().catch(() => {});
        return;
      }
      device.status = data.status;
      device.connected = data.status === "online";
      if (data.at) device.last_seen_at = data.at;
      renderDevices();
    },
    terminal: [404],
  });
}

function renderDevices() {
  const list = $("device-list");
  $("devices-empty").hidden = state.devices.length > 0;
  list.replaceChildren(
    ...state.devices.map((device) => {
      const meta = [
        device.device_id,
        device.connected ? "Online" : "Offline",
        `Seen ${ago(device.last_seen_at)}`,
        device.role || "owner",
      ].join(" · ");
      return el(
        "li",
        { class: "row", "data-device": device.device_id, onclick: () => deviceDetail(device) },
        el("span", { class: `dot ${device.connected ? "online" : ""}` }),
        el("div", { class: "grow" }, el("div", { class: "name" }, device.display_name || device.device_id), el("div", { class: "meta" }, meta)),
        el("button", {
          class: "primary",
          disabled: device.connected ? null : "",
          onclick: (event) => {
            event.stopPropagation();
            startSession(device.device_id);
          },
        }, "Session"),
      );
    }),
  );
}

async function deviceDetail(device) {
  let keyInfo = [el("dd", {}, "No identity key registered")];
  try {
    const identity = await api(`/gateway/v1/devices/${encodeURIComponent(device.device_id)}/identity-key`);
    keyInfo = [
      el("dd", {}, `${identity.algorithm}: `, el("code", {}, identity.public_key)),
      el("dt", {}, "Fingerprint"),
      el("dd", {}, el("code", { "data-fingerprint": "" }, await e2ee.fingerprint(identity.public_key))),
    ];
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) keyInfo = [el("dd", {}, errorText(err))];
  }
  modal(device.display_name || device.device_id, [
    el(
      "dl",
      { class: "facts" },
      el("dt", {}, "Device ID"), el("dd", {}, device.device_id),
      el("dt", {}, "Status"), el("dd", {}, device.connected ? "Online" : "Offline"),
      el("dt", {}, "Owner"), el("dd", {}, device.owner_email || device.owner_uid),
      el("dt", {}, "Role"), el("dd", {}, device.role || "owner"),
      el("dt", {}, "Updated"), el("dd", {}, device.updated_at || "—"),
      el("dt", {}, "Identity key"), ...keyInfo,
    ),
  ], [
    { label: "Close" },
    device.connected ? { label: "New Session", primary: true, onClick: () => startSession(device.device_id) } : null,
  ].filter(Boolean));
}

// -- sessions -------------------------------------------------------------------------------------------------------

function newSessionDialog() {
  const online = state.devices.filter((d) => d.connected);
  if (!online.length) {
    modal("New Session", [el("p", { class: "muted" }, "No device is online right now. Start an agent and try again.")], [{ label: "Close" }]);
    return;
  }
  const select = el("select", { id: "session-device" }, ...online.map((d) => el("option", { value: d.device_id }, d.display_name || d.device_id)));
  modal("New Session", [el("label", { for: "session-device" }, "Device"), select], [
    { label: "Cancel" },
    { label: "Start", primary: true, onClick: () => startSession(select.value) },
  ]);
}

function addMessage(session, kind, text) {
  session.log.push({ kind, text });
  if (state.current === session) $("chat-log").append(el("div", { class: `msg ${kind}` }, text));
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
}

function setStatus(session, text, tone = "") {
  session.status = text;
  session.tone = tone;
  if (state.current === session) {
    $("chat-status").textContent = text;
    $("chat-status").className = `pill ${tone}`;
    $("chat-form").hidden = !session.keys || session.ended;
  }
  renderSessionList();
}

function renderSessionList() {
  $("session-list").replaceChildren(
    ...[...state.sessions.values()].map((session) =>
      el(
        "li",
        { class: `row ${state.current === session ? "selected" : ""}`, onclick: () => selectSession(session) },
        el("div", { class: "grow" }, el("div", { class: "name" }, session.deviceName), el("div", { class: "meta" }, session.status)),
      ),
    ),
  );
}

function selectSession(session) {
  state.current = session;
  $("chat-title").textContent = session.deviceName;
  $("chat-log").replaceChildren(...session.log.map(({ kind, text }) => el("div", { class: `msg ${kind}` }, text)));
  setStatus(session, session.status, session.tone);
  if (location.hash !== "#/sessions") location.hash = "#/sessions";
}

async function startSession(deviceId) {
  if (!(await e2ee.supported())) {
    notice("This browser cannot do the encryption sessions need (X25519). Use a current Chrome, Edge or Firefox.", true);
    return;
  }
  const device = state.devices.find((d) => d.device_id === deviceId) || { device_id: deviceId };
  const session = {
    id: `sess_${e2ee.randomHex(16)}`,
    handshakeId: `hs_${e2ee.randomHex(16)}`,
    deviceId,
    deviceName: device.display_name || deviceId,
    nonce: e2ee.b64(crypto.getRandomValues(new Uint8Array(24))),
    log: [],
    seq: 0,
    received: 0,
    keys: null,
    ended: false,
    status: "starting",
  };
  state.sessions.set(session.id, session);
  selectSession(session);
  session.ephemeral = await e2ee.newEphemeral();
  try {
    const init = await api(`/gateway/v1/sessions/${session.id}/handshake/client-init`, {
      method: "POST",
      body: {
        device_id: deviceId,
        handshake_id: session.handshakeId,
        client_ephemeral_public_key: session.ephemeral.publicKey,
        client_session_nonce: session.nonce,
      },
    });
    session.conversationId = init.conversation_id;
    setStatus(session, init.relay_status === "forwarded_to_agent" ? "waiting for the agent" : "waiting for the agent to connect", "warn");
  } catch (err) {
    setStatus(session, "failed", "bad");
    addMessage(session, "failure", errorText(err));
    return;
  }
  session.stream = openStream(`/gateway/v1/sessions/${session.id}/events`, {
    onEvent: (event, data) => onSessionEvent(session, event, data),
    onStatus: (status, code) => {
      if (status === "closed" && !session.ended) {
        session.ended = true;
        setStatus(session, "ended", "bad");
        addMessage(session, "system", code === 403 ? "You no longer have access to this device." : "This session has ended.");
      }
    },
  });
  pollHandshake(session);
}

async function pollHandshake(session) {
  for (let attempt = 0; attempt < 60 && !session.keys && !session.ended; attempt++) {
    try {
      const hs = await api(`/gateway/v1/sessions/${session.id}/handshake/${session.handshakeId}`);
      if (hs.status === "agent_acknowledged") return establish(session, hs);
      if (hs.status === "agent_error") {
        setStatus(session, "rejected", "bad");
        addMessage(session, "failure", `The agent could not start this session: ${hs.last_error || "unknown error"}.`);
        return;
      }
    } catch (err) {
      addMessage(session, "failure", errorText(err));
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  if (!session.keys && !session.ended) setStatus(session, "the agent did not answer", "bad");
}

async function establish(session, hs) {
  if (session.keys || session.establishing) return;
  session.establishing = true;
  try {
    const t = await e2ee.transcript(session.id, session.handshakeId, session.ephemeral.publicKey, session.nonce, hs.agent_ephemeral_public_key);
    if (e2ee.b64(t) !== hs.transcript_hash) throw new Error("The handshake transcript does not match.");
    const identity = await api(`/gateway/v1/devices/${encodeURIComponent(session.deviceId)}/identity-key`);
    if (!(await e2ee.verifyIdentity(identity.public_key, t, hs.agent_identity_signature))) {
      throw new Error("The agent's signature does not match its registered identity key.");
    }
    session.keys = await e2ee.deriveKeys(session.ephemeral.pair, hs.agent_ephemeral_public_key, t);
    session.conversationId = hs.conversation_id || session.conversationId;
    setStatus(session, "agent_acknowledged (encrypted)", "ok");
    addMessage(session, "system", "E2E encryption established");
  } catch (err) {
    setStatus(session, "not trusted", "bad");
    addMessage(session, "failure", err.message || "The handshake could not be verified.");
    session.ended = true;
    if (session.stream) session.stream.close();
  } finally {
    session.establishing = false;
  }
}

async function onSessionEvent(session, event, data) {
  if (event === "session.ended") {
    session.ended = true;
    const reasons = {
      grant_revoked: "The owner stopped sharing this device with you.",
      grant_left: "You left this shared device.",
      device_deleted: "The device was removed.",
      expired: "This session expired after a day without activity.",
    };
    setStatus(session, "ended", "bad");
    addMessage(session, "system", reasons[data.reason] || "This session has ended.");
    return;
  }
  if (event === "session.error") {
    addMessage(session, "failure", "The agent lost this session (it may have restarted). Start a new session.");
    return;
  }
  if (data.type === "session.handshake.ack") {
    if (!session.keys && data.status === "agent_acknowledged") {
      const hs = await api(`/gateway/v1/sessions/${session.id}/handshake/${session.handshakeId}`).catch(() => null);
      if (hs && hs.status === "agent_acknowledged") establish(session, hs);
    }
    return;
  }
  if (data.encrypted === true && data.ciphertext) {
    if (!session.keys || data.seq <= session.received) return;
    let payload;
    try {
      payload = JSON.parse(await e2ee.open(session.keys.agentToClient, data, "agent_to_client"));
    } catch {
      addMessage(session, "failure", "A message from the agent could not be decrypted.");
      return;
    }
    session.received = data.seq;
    if (payload.status === "running") addMessage(session, "progress", "The agent is working…");
    else if (payload.error !== undefined) addMessage(session, "failure", `Agent error: ${payload.error}`);
    else if (payload.result !== undefined) addMessage(session, "agent", String(payload.result));
    else addMessage(session, "agent", JSON.stringify(payload));
    return;
  }
  if (data.type) addMessage(session, "system", `${data.type}`);
}

async function sendMessage(text) {
  const session = state.current;
  if (!session || !session.keys || session.ended || !text.trim()) return;
  const messageId = `msg_${e2ee.randomHex(16)}`;
  const seq = session.seq + 1;
  const plaintext = JSON.stringify({ session_id: session.id, message_id: messageId, prompt: text });
  const frame = await e2ee.seal(session.keys.clientToAgent, "client_to_agent", seq, session.id, messageId, plaintext);
  const body = { ...frame, type: "session.message", session_id: session.id, message_id: messageId, handshake_id: session.handshakeId };
  if (session.conversationId) body.conversation_id = session.conversationId;
  addMessage(session, "me", text);
  try {
    await api(`/gateway/v1/sessions/${session.id}/messages`, {
      method: "POST",
      body,
      headers: { "X-Idempotency-Key": `idem_${e2ee.randomHex(16)}` },
    });
    session.seq = seq; // only after the gateway took it (docs/protocol/decisions.md C1)
  } catch (err) {
    addMessage(session, "failure", `Not sent: ${errorText(err)}`);
  }
}

// -- shares ---------------------------------------------------------------------------------------------------------

async function loadShares() {
  let devices;
  try {
    devices = await loadDevices();
  } catch (err) {
    notice(errorText(err), true);
    return;
  }
  const owned = devices.filter((d) => d.role === "owner");
  const cards = await Promise.all(owned.map(async (device) => {
    const card = el("div", { class: "card", "data-share-device": device.device_id }, el("h3", {}, device.display_name || device.device_id));
    try {
      const { grants } = await api(`/gateway/v1/shares/devices/${encodeURIComponent(device.device_id)}/grants`);
      const live = grants.filter((g) => g.status === "pending" || g.status === "active");
      const past = grants.filter((g) => g.status !== "pending" && g.status !== "active");
      if (!live.length) card.append(el("p", { class: "muted" }, "Not shared with anyone."));
      for (const grant of live) card.append(grantRow(grant));
      if (past.length) card.append(el("details", {}, el("summary", {}, `${past.length} revoked/expired`), ...past.map((g) => grantRow(g, true))));
    } catch (err) {
      card.append(el("p", { class: "error" }, errorText(err)));
    }
    return card;
  }));
  $("share-cards").replaceChildren(...(cards.length ? cards : [el("p", { class: "muted" }, "You don't own any devices yet.")]));
  const shared = devices.filter((d) => d.role === "collaborator");
  $("shared-with-me").replaceChildren(
    ...(shared.length
      ? shared.map((device) =>
          el(
            "li",
            { class: "row", "data-shared": device.device_id },
            el("span", { class: `dot ${device.connected ? "online" : ""}` }),
            el("div", { class: "grow" }, el("div", { class: "name" }, device.display_name || device.device_id), el("div", { class: "meta" }, `Owner: ${device.owner_email || device.owner_uid}`)),
            el("button", { class: "danger", onclick: () => leave(device) }, "Leave"),
          ),
        )
      : [el("li", { class: "muted" }, "Nothing is shared with you.")]),
  );
}

function grantRow(grant, past = false) {
  const tone = grant.status === "active" ? "ok" : grant.status === "pending" ? "warn" : "";
  const created = grant.createdAt ? ago(new Date(grant.createdAt * 1000).toISOString()) : "";
  return el(
    "div",
    { class: "grant", "data-grant": grant.grantId },
    el("div", { class: "grow" }, el("div", {}, grant.granteeEmail || grant.granteeUid), el("div", { class: "muted" }, `${grant.role} · Created ${created}`)),
    el("span", { class: `pill ${tone}` }, grant.status),
    past ? null : el("button", { class: "danger", onclick: () => revoke(grant) }, "Revoke"),
  );
}

function revoke(grant) {
  modal("Revoke access?", [el("p", {}, `${grant.granteeEmail || grant.granteeUid} will lose access to this device at once.`)], [
    { label: "Cancel" },
    {
      label: "Revoke",
      primary: true,
      onClick: async () => {
        await api(`/gateway/v1/shares/grants/${encodeURIComponent(grant.grantId)}/revoke`, { method: "POST" });
        loadShares();
      },
    },
  ]);
}

function leave(device) {
  modal("Leave this device?", [el("p", {}, `You will lose access to ${device.display_name || device.device_id}.`)], [
    { label: "Cancel" },
    {
      label: "Leave",
      primary: true,
      onClick: async () => {
        await api(`/gateway/v1/shares/grants/${encodeURIComponent(device.grant_id)}/leave`, { method: "POST" });
        loadShares();
      },
    },
  ]);
}

function inviteDialog() {
  const owned = state.devices.filter((d) => d.role === "owner");
  if (!owned.length) {
    modal("Create Invite", [el("p", { class: "muted" }, "You don't own any devices to share yet.")], [{ label: "Close" }]);
    return;
  }
  const select = el("select", { id: "invite-device" }, ...owned.map((d) => el("option", { value: d.device_id }, d.display_name || d.device_id)));
  const email = el("input", { id: "invite-email", type: "email", placeholder: "name@example.com" });
  modal("Create Invite", [el("label", { for: "invite-device" }, "Device"), select, el("label", { for: "invite-email" }, "Email of the person to invite"), email], [
    { label: "Cancel" },
    {
      label: "Create",
      primary: true,
      onClick: async () => {
        const created = await api("/gateway/v1/shares/invites", { method: "POST", body: { deviceId: select.value, email: email.value } });
        showInviteLink(created.inviteUrl);
        loadShares();
        return false;
      },
    },
  ]);
}

function showInviteLink(url) {
  const input = el("input", { id: "invite-url", readonly: "", value: url });
  const status = el("p", { class: "muted" }, "Send this link to the person you invited. It works once.");
  modal("Invite created", [el("div", { class: "copy-row" }, input, el("button", {
    type: "button",
    onclick: async () => {
      input.select();
      try {
        await navigator.clipboard.writeText(url);
        status.textContent = "Copied.";
      } catch {
        status.textContent = "Select the link and copy it.";
      }
    },
  }, "Copy")), status], [{ label: "Done" }]);
}

async function showAccept(token) {
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== "view-accept";
  const button = $("accept-button");
  $("accept-error").textContent = "";
  button.hidden = true; // shown once the invitation is known to be open, with its handler in place
  button.onclick = async () => {
    try {
      const result = await api("/gateway/v1/shares/invites/accept", { method: "POST", body: { token } });
      sessionStorage.removeItem(SHARE_KEY);
      button.hidden = true;
      $("accept-text").textContent = "You now have access to the device. It is listed under Devices.";
      await loadDevices();
      notice(`Invitation accepted: ${result.deviceId}`);
      location.hash = "#/devices";
    } catch (err) {
      $("accept-error").textContent = errorText(err);
    }
  };
  try {
    const response = await fetch(`/share/${encodeURIComponent(token)}`, { headers: { Accept: "application/json" } });
    const invite = await response.json();
    if (response.ok) {
      $("accept-text").textContent = invite.status === "pending"
        ? `${invite.ownerEmail || "Someone"} invited you to use the device "${invite.deviceName}".`
        : `This invitation is ${invite.status} and can no longer be accepted.`;
      button.hidden = invite.status !== "pending";
    } else {
      $("accept-text").textContent = "This invitation link is not valid or has already been used.";
    }
  } catch {
    $("accept-text").textContent = "You have been invited to use a device on this gateway.";
    button.hidden = false;
  }
}

// -- deep links -----------------------------------------------------------------------------------------------------

function rememberDeepLink() {
  const params = new URLSearchParams(location.search);
  if (params.has("device_id")) {
    const link = { device_id: params.get("device_id"), onboarding: params.get("onboarding"), source: params.get("source"), until: Date.now() + 300000 };
    sessionStorage.setItem(DEEPLINK_KEY, JSON.stringify(link));
  }
  const share = (location.hash.match(/^#\/share\/([A-Za-z0-9_-]+)/) || [])[1];
  if (share) sessionStorage.setItem(SHARE_KEY, share);
}

async function followDeepLink() {
  let link = null;
  try {
    link = JSON.parse(sessionStorage.getItem(DEEPLINK_KEY) || "null");
  } catch {
    link = null;
  }
  sessionStorage.removeItem(DEEPLINK_KEY);
  if (!link || link.until < Date.now()) return;
  for (let attempt = 0; attempt < 15; attempt++) {
    const device = state.devices.find((d) => d.device_id === link.device_id);
    if (device && device.connected) return startSession(device.device_id);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await loadDevices().catch(() => {});
  }
  notice("The device from the link did not come online.", true);
}

// -- start ----------------------------------------------------------------------------------------------------------

async function start() {
  rememberDeepLink();
  const failure = await completeSignIn();
  if (!loadTokens()) {
    $("login").hidden = false;
    $("login-error").textContent = failure;
    $("sign-in").onclick = signIn;
    return;
  }
  $("app").hidden = false;
  const user = currentUser() || {};
  $("user-label").textContent = user.email || user.name || user.sub || "";
  $("sign-out").onclick = signOut;
  $("refresh-dashboard").onclick = loadDashboard;
  $("new-session").onclick = newSessionDialog;
  $("new-invite").onclick = async () => {
    await loadDevices().catch(() => {});
    inviteDialog();
  };
  initWebhooks({ el, modal, errorText, ago, devices: () => state.devices });
  $("chat-form").onsubmit = (event) => {
    event.preventDefault();
    const text = $("chat-input").value;
    $("chat-input").value = "";
    sendMessage(text);
  };
  const pendingShare = sessionStorage.getItem(SHARE_KEY);
  if (pendingShare && !location.hash.startsWith("#/share/")) location.hash = `#/share/${pendingShare}`;
  window.addEventListener("hashchange", route);
  try {
    await loadDevices();
  } catch (err) {
    notice(errorText(err), true);
  }
  startDeviceStream();
  route();
  followDeepLink();
}

// Exposed for the browser tests: a way to drop a session's event stream and watch it resume.
window.gatewayConsole = { state, dropStreams: () => state.sessions.forEach((s) => s.stream && s.stream.reconnect()) };

start();
