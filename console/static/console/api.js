// Talking to the gateway: tokens in sessionStorage only (docs/protocol/decisions.md C2), one retry after a refresh on 401,
// rotated refresh tokens always kept (C1), and errors turned into sentences for people.

const AUTH_KEY = "gw_console_auth";

export function loadTokens() {
  try {
    return JSON.parse(sessionStorage.getItem(AUTH_KEY) || "null");
  } catch {
    return null;
  }
}

export function saveTokens(tokens) {
  sessionStorage.setItem(AUTH_KEY, JSON.stringify(tokens));
}

export function clearTokens() {
  sessionStorage.removeItem(AUTH_KEY);
}

let refreshing = null;

// One refresh at a time: concurrent 401s wait for the same rotation instead of replaying the old token
// (a replay would revoke the whole token family).
export function refreshTokens() {
  if (!refreshing) {
    refreshing = (async () => {
      const current = loadTokens();
      if (!current || !current.refresh_token) throw new ApiError(401, { error: "not signed in" });
      const response = await fetch("/oauth/token", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: current.refresh_token }),
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        clearTokens();
        throw new ApiError(response.status, body);
      }
      saveTokens({ ...current, ...body, refresh_token: body.refresh_token || current.refresh_token });
      return loadTokens();
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body || {};
    this.code = typeof this.body.error === "string" ? this.body.error : (this.body.error && this.body.error.code) || "";
  }
}

const MESSAGES = {
  "missing bearer token": "Please sign in again.",
  "forbidden": "You don't have access to this.",
  "device not found": "That device no longer exists.",
  "device identity not found": "This device has not registered its identity key yet.",
  "session not found": "This session has ended. Start a new one.",
  "agent_unavailable": "The agent is not connected right now. Try again when it is online.",
  "handshake_not_ready": "The agent has not finished setting up this session yet.",
  "replay_detected": "That message was already sent.",
  "duplicate_request": "That message was already sent.",
  "invalid email": "Please enter a valid email address.",
  "cannot invite yourself": "You can't invite yourself.",
  "you do not own this device": "Only the device's owner can do that.",
  "an active or pending grant already exists for this email and device": "That person already has an invitation or access to this device.",
  "email is required to accept invites": "Your account has no email address, so it can't accept invitations.",
  "email does not match this invite": "This invitation was sent to a different email address. Sign in with that address to accept it.",
  "invite not found or already used": "This invitation link is not valid or has already been used.",
  "invite has expired": "This invitation has expired. Ask the owner for a new one.",
  "invite is revoked": "This invitation was withdrawn by the owner.",
  "invite is active": "This invitation has already been accepted.",
  "too_many_requests": "Too many attempts. Please wait a minute and try again.",
};

export function describe(status, body) {
  const error = body && body.error;
  const key = typeof error === "string" ? error : error && error.message;
  if (key && MESSAGES[key]) return MESSAGES[key];
  if (error && typeof error === "object" && error.message) return error.message;
  if (status === 0) return "The gateway can't be reached. Check your connection.";
  if (status >= 500) return "The gateway had a problem. Please try again.";
  if (typeof key === "string" && key) return key.charAt(0).toUpperCase() + key.slice(1).replace(/_/g, " ") + ".";
  return `The request failed (HTTP ${status}).`;
}

export async function authorizedFetch(path, options = {}, retried = false) {
  const tokens = loadTokens();
  const headers = { ...(options.headers || {}) };
  if (tokens) headers.Authorization = `Bearer ${tokens.access_token}`;
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, {});
  }
  if (response.status === 401 && !retried && tokens && tokens.refresh_token) {
    await refreshTokens();
    return authorizedFetch(path, options, true);
  }
  return response;
}

export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const options = { method, headers: { "Content-Type": "application/json", ...headers } };
  if (body !== undefined) options.body = JSON.stringify(body);
  const response = await authorizedFetch(path, options);
  const text = await response.text();
  let data = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { error: text };
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}
