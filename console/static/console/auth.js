// Signing in through the gateway's own OAuth flow: PKCE S256 with the default client and
// redirect_uri = <origin>/console (docs/protocol/system-and-console.md §5.1).

import { clearTokens, loadTokens, saveTokens } from "./api.js";

const PKCE_KEY = "gw_console_pkce";
const ALPHANUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export function redirectUri() {
  return `${location.origin}/console`;
}

function randomAlphanumeric(length) {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => ALPHANUM[b % ALPHANUM.length]).join("");
}

export function base64url(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export async function signIn() {
  const verifier = randomAlphanumeric(64);
  sessionStorage.setItem(PKCE_KEY, verifier);
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const params = new URLSearchParams({
    response_type: "code",
    redirect_uri: redirectUri(),
    scope: "profile email",
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  location.assign(`/oauth/authorize?${params}`);
}

// After the gateway redirects back with ?code=, exchange it; returns an error message or "".
export async function completeSignIn() {
  const url = new URL(location.href);
  const code = url.searchParams.get("code");
  if (!code) return "";
  history.replaceState(null, "", `${url.pathname}${url.hash}`);
  const verifier = sessionStorage.getItem(PKCE_KEY) || "";
  sessionStorage.removeItem(PKCE_KEY);
  const response = await fetch("/oauth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "authorization_code", code, code_verifier: verifier, redirect_uri: redirectUri() }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) return "Sign-in did not complete. Please try again.";
  saveTokens(body);
  return "";
}

// Sign Out ends the sign-in on the gateway too: the refresh token is revoked before the tab forgets it, so a copy of
// it (a 30-day credential) is worthless afterwards (docs/protocol/decisions.md H6).
export async function signOut() {
  const tokens = loadTokens();
  if (tokens && tokens.refresh_token) {
    try {
      await fetch("/oauth/token/revoke", {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: tokens.refresh_token, token_type_hint: "refresh_token" }),
      });
    } catch {
      // Offline: the token still expires on its own; the tab forgets it either way.
    }
  }
  clearTokens();
  location.assign("/console");
}

export function currentUser() {
  const tokens = loadTokens();
  if (!tokens) return null;
  try {
    const payload = tokens.access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = payload + "=".repeat((4 - (payload.length % 4)) % 4);
    const json = decodeURIComponent(
      Array.from(atob(padded), (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""),
    );
    return JSON.parse(json);
  } catch {
    return null;
  }
}
