"""The production start commands as written (Procfile, railway.json, the README's uvicorn line) log each request once,
through the gateway's redacting access log, and never print a token, a code or a query string (decisions.md H10)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.helpers import PROCFILE_COMMAND, ROOT, clean_env, free_port, server_process
from tests.oauth_helpers import pkce_pair
from tests.relay_helpers import KEY_B64

UVICORN_COMMAND = (
    "uvicorn --host 0.0.0.0 --port ${PORT:-8080} --no-access-log --ws-max-size 8388608 --ws-per-message-deflate false "
    "--timeout-graceful-shutdown 20 gateway_site.asgi:application"
)


def test_railway_runs_the_procfile_command():
    railway = json.loads((ROOT / "railway.json").read_text())["deploy"]["startCommand"]
    assert railway == PROCFILE_COMMAND.replace("${PORT:-8080}", "$PORT")
    assert " -v 0 " in PROCFILE_COMMAND  # Daphne's own access log off: the gateway logs requests itself


def test_the_readme_documents_both_commands():
    readme = (ROOT / "README.md").read_text()
    assert PROCFILE_COMMAND in readme.replace("\n  ", " ")
    assert UVICORN_COMMAND in readme


def loopback(command: str) -> str:
    """The command exactly as written, but listening on loopback only (tests never bind every interface)."""
    return command.replace("interface=0.0.0.0", "interface=127.0.0.1").replace("--host 0.0.0.0", "--host 127.0.0.1")


def exercise(base_url: str) -> dict[str, str]:
    """Sign in with a code, create an invite and open its link, create a route and send it a webhook with a query.
    Returns every secret that went over the wire, by name."""
    secrets: dict[str, str] = {}
    with httpx.Client(base_url=base_url, timeout=15, follow_redirects=False) as http:
        verifier, challenge = pkce_pair()
        authorize = {
            "response_type": "code",
            "client_id": "commands-agent",
            "redirect_uri": "http://localhost:61696/callback",
            "scope": "profile email device offline_access",
            "state": "state-secret-0123456789",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        assert http.get("/oauth/authorize", params=authorize).status_code == 200
        answer = http.post("/oauth/authorize", data={**authorize, "demo_email": "owner@example.com"})
        code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
        secrets["code"], secrets["state"] = code, authorize["state"]
        # An authorize request that carries a code in its query string (as a confused client might send).
        http.get("/oauth/authorize", params={**authorize, "code": code})
        tokens = http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": authorize["redirect_uri"],
                "client_id": "commands-agent",
                "code_verifier": verifier,
            },
        ).json()
        secrets["access_token"], secrets["refresh_token"] = tokens["access_token"], tokens["refresh_token"]
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}

        device = "dev_production_log_1"
        put = http.put(
            f"/gateway/v1/devices/{device}/identity-key",
            json={"algorithm": "ed25519", "public_key": KEY_B64},
            headers=bearer,
        )
        assert put.status_code == 204, put.text
        invite = http.post(
            "/gateway/v1/shares/invites", json={"deviceId": device, "email": "friend@example.com"}, headers=bearer
        ).json()
        invite_path = urlsplit(invite["inviteUrl"]).path
        secrets["invite_token"] = invite_path.rsplit("/", 1)[1]
        assert http.get(invite_path).status_code == 200

        route = http.post(
            "/gateway/v1/integrations/routes", json={"device_id": device, "interface_type": "http"}, headers=bearer
        ).json()
        secrets["route_token"] = route["route_token"]
        webhook_path = urlsplit(route["public_url"]).path
        assert http.post(webhook_path, params={"hook": "query-secret-42"}, content=b"{}").status_code == 503
        secrets["query"] = "query-secret-42"
        secrets["route_id"] = route["route"]["route_id"]
    return secrets


@pytest.mark.parametrize("command", [PROCFILE_COMMAND, UVICORN_COMMAND], ids=["procfile-daphne", "uvicorn"])
def test_production_command_logs_each_request_once_and_no_secret(command):
    port = free_port()
    env = clean_env(PORT=str(port))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with server_process(["bash", "-c", f"exec {loopback(command)}"], port=port, env=env) as server:
        secrets = exercise(server.base_url)
        server.process.terminate()
        server.process.wait(timeout=30)
        output = server.log()
    route_id = secrets.pop("route_id")
    for name, value in secrets.items():
        assert value not in output, f"the {name} reached the log"
    assert "?" not in "".join(line for line in output.splitlines() if "path=" in line)
    # One line per request: the single webhook and the single invite view each appear once.
    assert len(re.findall(rf"/integrations/{route_id}/\[redacted\]", output)) == 1, output
    assert len(re.findall(r"/share/\[redacted\]", output)) == 1, output
    assert len(re.findall(r"path=/oauth/token\b", output)) == 1, output


@pytest.mark.parametrize("command", [PROCFILE_COMMAND, UVICORN_COMMAND], ids=["procfile-daphne", "uvicorn"])
def test_production_command_does_not_negotiate_permessage_deflate(command):
    """Compression buys nothing for ciphertext frames and costs each socket its zlib state (docs/performance.md): an
    agent that offers permessage-deflate gets a plain socket under either production command."""
    from websockets.sync.client import connect

    port = free_port()
    env = clean_env(PORT=str(port))
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with server_process(["bash", "-c", f"exec {loopback(command)}"], port=port, env=env) as server:
        token = exercise(server.base_url)["access_token"]
        url = server.base_url.replace("http://", "ws://") + "/gateway/v1/agent/connect?device_id=dev_production_log_1"
        with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, compression="deflate") as socket:
            offered = socket.request.headers.get("Sec-WebSocket-Extensions") if socket.request else None
            answered = socket.response.headers.get("Sec-WebSocket-Extensions") if socket.response else "no response"
    assert offered and "permessage-deflate" in offered  # the client did offer it
    assert answered is None
