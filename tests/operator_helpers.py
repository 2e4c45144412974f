"""Live fixtures for the operator tests: a user signed in through the demo page, with a connected agent and a webhook
route whose tunnel answers every webhook with 200."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from tests.e2ee import AgentSide
from tests.oauth_helpers import CALLBACK, pkce_pair


async def sign_in_tokens(http: httpx.AsyncClient, email: str, scope: str = "profile email device") -> dict:
    """The demo sign-in form and the PKCE exchange; the whole token response (access and refresh token)."""
    verifier, challenge = pkce_pair()
    answer = await http.post(
        "/oauth/authorize",
        data={
            "redirect_uri": CALLBACK,
            "scope": scope,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "demo_email": email,
        },
    )
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    tokens = await http.post(
        "/oauth/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier},
    )
    assert tokens.status_code == 200, tokens.text
    return dict(tokens.json())


async def answer_webhooks(ws) -> None:
    """A tunnel client: every webhook is answered 200 `ok`."""
    async for text in ws:
        frame = json.loads(text)
        if frame.get("type") == "tunnel.request":
            body = base64.b64encode(b"ok").decode()
            answer = {"type": "tunnel.response", "request_id": frame["request_id"], "status": 200, "body_base64": body}
            answer["headers"] = [["Content-Type", "text/plain"]]
            await ws.send(json.dumps(answer))


@dataclass
class LiveUser:
    """A user with an agent socket and a tunnel holding one route (`webhook` posts to it)."""

    http: httpx.AsyncClient
    base_url: str
    email: str
    device_id: str
    tokens: dict = field(default_factory=dict)
    uid: str = ""
    route_id: str = ""
    route_path: str = ""
    agent: ClientConnection | None = None
    tunnel: ClientConnection | None = None
    tunnel_task: asyncio.Future | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    @property
    def ws_base(self) -> str:
        return self.base_url.replace("http://", "ws://")

    async def start(self, *, route: bool = True) -> LiveUser:
        self.tokens = await sign_in_tokens(self.http, self.email)
        payload = self.tokens["access_token"].split(".")[1]
        self.uid = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
        body = {"algorithm": "ed25519", "public_key": AgentSide.new().identity_b64, "display_name": "Build box"}
        put = await self.http.put(f"/gateway/v1/devices/{self.device_id}/identity-key", json=body, headers=self.headers)
        assert put.status_code == 204, put.text
        await self.connect_agent()
        if route:
            await self.start_route()
        return self

    async def connect_agent(self) -> None:
        url = f"{self.ws_base}/gateway/v1/agent/connect?device_id={self.device_id}"
        self.agent = await websockets.connect(url, additional_headers={**self.headers, "X-Device-Id": self.device_id})
        assert json.loads(await self.agent.recv())["type"] == "gateway.connected"

    async def start_route(self) -> None:
        created = await self.http.post(
            "/gateway/v1/integrations/routes",
            json={"device_id": self.device_id, "interface_type": "http"},
            headers=self.headers,
        )
        assert created.status_code == 201, created.text
        self.route_id = created.json()["route"]["route_id"]
        self.route_path = urlsplit(created.json()["public_url"]).path
        url = f"{self.ws_base}/gateway/v1/integrations/tunnel/connect?device_id={self.device_id}"
        self.tunnel = await websockets.connect(url, additional_headers=self.headers)
        assert json.loads(await self.tunnel.recv())["type"] == "tunnel.connected"
        await self.tunnel.send(json.dumps({"type": "tunnel.activate", "routes": [self.route_id]}))
        assert json.loads(await self.tunnel.recv())["results"][0]["status"] == "active"
        self.tunnel_task = asyncio.ensure_future(answer_webhooks(self.tunnel))

    async def webhook(self) -> int:
        return (await self.http.post(self.route_path, content=b"{}")).status_code

    async def agent_closed(self, timeout: float = 10) -> tuple[int | None, str | None]:
        assert self.agent is not None
        await asyncio.wait_for(self.agent.wait_closed(), timeout=timeout)
        return self.agent.close_code, self.agent.close_reason

    async def stop(self) -> None:
        if self.tunnel_task is not None:
            self.tunnel_task.cancel()
            await asyncio.gather(self.tunnel_task, return_exceptions=True)
        for ws in (self.agent, self.tunnel):
            if ws is not None:
                with contextlib.suppress(Exception):
                    await ws.close()
