"""The public agent client's login against a live Daphne server (docs/protocol/oauth.md §14): loopback PKCE and headless
OOB."""

from __future__ import annotations

import base64
import html
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.helpers import daphne_server
from tests.oauth_helpers import jwt_payload, pkce_pair

AGENT_SCOPE = "read_assets write_assets offline_access device"


@pytest.fixture(scope="module")
def gateway():
    with daphne_server() as server:
        yield server


def form_fields(page: str) -> dict[str, str]:
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    return {name: html.unescape(value) for name, value in fields}


class Callback:
    """The agent's loopback callback server on a random port; records the query it receives."""

    def __init__(self) -> None:
        received: dict[str, list[str]] = {}
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                if parts.path == "/callback":
                    received.update(parse_qs(parts.query))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"You can close this window.")

            def log_message(self, *args) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.handle_request, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.thread.join(timeout=10)
        self.server.server_close()


def test_browser_login_with_a_loopback_redirect_on_a_random_port(gateway):
    callback = Callback()
    try:
        verifier, challenge = pkce_pair()
        state = base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
        redirect_uri = f"http://localhost:{callback.port}/callback"
        query = urlencode(
            {
                "response_type": "code",
                "client_id": "commands-agent",
                "redirect_uri": redirect_uri,
                "scope": AGENT_SCOPE,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        with httpx.Client(base_url=gateway.base_url, timeout=10) as browser:
            page = browser.get(f"/oauth/authorize?{query}", headers={"Accept": "text/html"})
            assert page.status_code == 200 and "Demo Mode" in page.text
            fields = form_fields(page.text)
            assert fields["state"] == state and fields["redirect_uri"] == redirect_uri
            submitted = browser.post(
                "/oauth/authorize", data={**fields, "demo_email": "agent-user@example.com", "demo_name": "Agent User"}
            )
            assert submitted.status_code == 303  # See Other: the browser follows with a GET
            browser.get(submitted.headers["Location"])  # the browser follows to the agent's callback
        callback.thread.join(timeout=10)
        assert callback.received["state"] == [state]
        code = callback.received["code"][0]
    finally:
        callback.close()

    with httpx.Client(base_url=gateway.base_url, timeout=10) as agent:
        response = agent.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": "commands-agent",
                "code_verifier": verifier,
            },
            headers={"Accept": "application/json"},
        )
        assert response.status_code == 200
        tokens = response.json()
        assert isinstance(tokens["expires_in"], int) and tokens["scope"] == "offline_access device"
        claims = jwt_payload(tokens["access_token"])
        assert claims["email"] == "agent-user@example.com" and claims["name"] == "Agent User"
        assert claims["sub"].startswith("demo-")

        health = agent.get("/gateway/v1/health", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert health.status_code == 200 and "devices" in health.json()

        refreshed = agent.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": "commands-agent",
            },
        )
        assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] != tokens["refresh_token"]
        replay = agent.post(
            "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": "commands-agent",
            },
        )
        assert "refresh token not found or expired" in replay.json()["error_description"]

    log = gateway.log()
    for secret in (code, tokens["access_token"], tokens["refresh_token"], verifier):
        assert secret not in log


def test_headless_out_of_band_login(gateway):
    verifier, challenge = pkce_pair()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": "commands-agent",
            "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
            "scope": AGENT_SCOPE,
            "state": "headless-state",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    with httpx.Client(base_url=gateway.base_url, timeout=10) as http:
        fields = form_fields(http.get(f"/oauth/authorize?{query}").text)
        # A person's browser gets a page with the code and a copy button.
        page = http.post(
            "/oauth/authorize",
            data={**fields, "demo_email": "headless@example.com"},
            headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
        )
        assert page.status_code == 200 and "Copy code" in page.text
        # curl and scripts get the JSON answer; the user pastes its code into the agent.
        answer = http.post("/oauth/authorize", data={**fields, "demo_email": "headless@example.com"})
        assert answer.status_code == 200
        body = answer.json()
        assert body["state"] == "headless-state" and body["challenge_method"] == "S256"
        tokens = http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": body["code"],
                "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
                "client_id": "commands-agent",
                "code_verifier": verifier,
            },
        )
        assert (
            tokens.status_code == 200 and jwt_payload(tokens.json()["access_token"])["email"] == "headless@example.com"
        )
