"""Helpers for OAuth tests: PKCE pairs, signing in through the demo page, exchanging codes."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from urllib.parse import parse_qs, urlsplit

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
CALLBACK = "http://localhost:61696/callback"
OOB = "urn:ietf:wg:oauth:2.0:oob"


def pkce_pair() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def jwt_payload(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def jwt_header(token: str) -> dict:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))


def authorize_params(**overrides: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": "commands-agent",
        "redirect_uri": CALLBACK,
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def get_code(client, email: str = "alice@example.com", **overrides: str) -> str:
    """Sign in through the demo form (POST) and return the code from the redirect."""
    response = client.post("/oauth/authorize", authorize_params(demo_email=email, **overrides))
    assert response.status_code == 303, response.content  # a POST sign-in answers 303 (decisions.md H6)
    return parse_qs(urlsplit(response["Location"]).query)["code"][0]


def exchange(
    client, code: str | None, verifier: str | None = VERIFIER, redirect_uri: str | None = CALLBACK, **extra: str | None
):
    """POST the authorization_code grant; a parameter given as None is left out of the request."""
    data: dict[str, str | None] = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": "commands-agent",
        "code_verifier": verifier,
    }
    data.update(extra)
    return client.post("/oauth/token", {k: v for k, v in data.items() if v is not None})


def sign_in(client, email: str = "alice@example.com", **overrides: str) -> dict:
    response = exchange(client, get_code(client, email, **overrides))
    assert response.status_code == 200, response.content
    return response.json()


def refresh(client, token: str, **extra: str):
    return client.post("/oauth/token", {"grant_type": "refresh_token", "refresh_token": token, **extra})


async def live_sign_in(http, email: str, scope: str = "profile email", redirect_uri: str = CALLBACK) -> str:
    """Against a live server: the demo sign-in form's POST and the PKCE code exchange; returns the access token."""
    from urllib.parse import parse_qs as _qs
    from urllib.parse import urlsplit as _split

    verifier, challenge = pkce_pair()
    answer = await http.post(
        "/oauth/authorize",
        data={
            "response_type": "code",
            "client_id": "commands-agent",
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": "st",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "demo_email": email,
        },
    )
    code = _qs(_split(answer.headers["Location"]).query)["code"][0]
    tokens = await http.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": "commands-agent",
            "code_verifier": verifier,
        },
    )
    return str(tokens.json()["access_token"])
