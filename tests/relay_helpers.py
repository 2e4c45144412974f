"""Helpers for relay tests: tokens, devices, and talking to the ASGI application in-process."""

from __future__ import annotations

import base64
import json
from typing import Any

from channels.testing import ApplicationCommunicator
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from oauthapp.tokens import Identity, issue_access_token

KEY_B64 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="


def token_for(uid: str = "owner-1", *, email: str = "", scope: str = "profile email device") -> str:
    return issue_access_token(Identity(uid, email, uid), scope)[0]


def auth(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def new_public_key() -> str:
    raw = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode()


def put_key(client, token: str, device_id: str, body: Any = None, **extra: Any):
    payload = body if body is not None else {"algorithm": "ed25519", "public_key": KEY_B64}
    data = payload if isinstance(payload, (str, bytes)) else json.dumps(payload)
    return client.put(
        f"/gateway/v1/devices/{device_id}/identity-key",
        data,
        content_type=extra.pop("content_type", "application/json"),
        **auth(token),
        **extra,
    )


def register(device_id: str, owner_uid: str = "owner-1", *, email: str = "", key: str = KEY_B64, name: str = ""):
    """Create a device record directly (for tests that are not about registration)."""
    from relay.models import Device

    return Device.objects.create(
        device_id=device_id, owner_uid=owner_uid, owner_email=email, public_key=key, display_name=name
    )


def headers(token: str | None, **extra: str) -> list[tuple[bytes, bytes]]:
    out = [(b"host", b"testserver")]
    if token is not None:
        out.append((b"authorization", f"Bearer {token}".encode()))
    out.extend((k.lower().replace("_", "-").encode(), v.encode()) for k, v in extra.items())
    return out


class AgentSocket:
    """An agent WebSocket against the full ASGI application (with the denial-response extension, as uvicorn)."""

    path = "/gateway/v1/agent/connect"

    def __init__(self, app: Any, token: str | None, device_id: str | None = "dev_test1", **hdrs: str) -> None:
        query = f"device_id={device_id}" if device_id is not None else ""
        scope = {
            "type": "websocket",
            "path": self.path,
            "raw_path": self.path.encode(),
            "query_string": query.encode(),
            "headers": headers(token, **hdrs),
            "subprotocols": [],
            "client": ("127.0.0.1", 40000),
            "server": ("testserver", 80),
            "extensions": {"websocket.http.response": {}},
        }
        self.io = ApplicationCommunicator(app, scope)
        self.accepted = False
        self.denial: tuple[int, dict[str, Any]] | None = None

    async def connect(self, timeout: float = 5) -> bool:
        await self.io.send_input({"type": "websocket.connect"})
        first = await self.io.receive_output(timeout)
        if first["type"] == "websocket.accept":
            self.accepted = True
            return True
        if first["type"] == "websocket.http.response.start":
            body = await self.io.receive_output(timeout)
            self.denial = (first["status"], json.loads(body["body"]))
        # As a server does once the upgrade is refused: the connection is gone, and the application ends.
        await self.io.send_input({"type": "websocket.disconnect", "code": 1006})
        await self.io.wait(timeout)
        return False

    async def recv(self, timeout: float = 5) -> dict[str, Any]:
        message = await self.io.receive_output(timeout)
        assert message["type"] == "websocket.send", message
        return json.loads(message["text"])

    async def recv_raw(self, timeout: float = 5) -> dict[str, Any]:
        return await self.io.receive_output(timeout)

    async def send(self, frame: Any) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        await self.io.send_input({"type": "websocket.receive", "text": text})

    async def nothing(self, timeout: float = 0.3) -> bool:
        return await self.io.receive_nothing(timeout)

    async def open(self) -> list[dict[str, Any]]:
        """Connect and read the two greeting frames."""
        assert await self.connect(), self.denial
        return [await self.recv(), await self.recv()]

    async def close(self) -> None:
        await self.io.send_input({"type": "websocket.disconnect", "code": 1000})
        await self.io.wait(5)


class TunnelSocket(AgentSocket):
    """The tunnel WebSocket, driven the same way."""

    path = "/gateway/v1/integrations/tunnel/connect"

    async def open(self) -> list[dict[str, Any]]:
        assert await self.connect(), self.denial
        return [await self.recv()]


class Stream:
    """An SSE request against the full ASGI application, read chunk by chunk."""

    def __init__(self, app: Any, path: str, token: str | None, **hdrs: str) -> None:
        path_only, _, query = path.partition("?")
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path_only,
            "raw_path": path_only.encode(),
            "query_string": query.encode(),
            "headers": headers(token, **hdrs),
            "client": ("127.0.0.1", 40001),
            "server": ("testserver", 80),
        }
        self.io = ApplicationCommunicator(app, scope)
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.buffer = b""

    async def open(self, timeout: float = 5) -> int:
        await self.io.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await self.io.receive_output(timeout)
        assert start["type"] == "http.response.start", start
        self.status = start["status"]
        self.headers = dict(start["headers"])
        return self.status

    async def chunk(self, timeout: float = 5) -> bytes:
        message = await self.io.receive_output(timeout)
        assert message["type"] == "http.response.body", message
        self.more = message.get("more_body", False)
        return message["body"]

    async def read_until(self, marker: bytes, timeout: float = 5) -> bytes:
        """Read until `marker` has arrived; returns everything read so far (and keeps the rest)."""
        import time as _time

        deadline = _time.monotonic() + timeout
        while marker not in self.buffer:
            remaining = deadline - _time.monotonic()
            assert remaining > 0, f"{marker!r} not seen in {self.buffer!r}"
            self.buffer += await self.chunk(remaining)
        end = self.buffer.index(marker) + len(marker)
        out, self.buffer = self.buffer[:end], self.buffer[end:]
        return out

    async def body_json(self) -> Any:
        return json.loads(await self.chunk())

    async def close(self) -> None:
        await self.io.send_input({"type": "http.disconnect"})
        await self.io.wait(5)


def http_client(app: Any):
    """An httpx client on the ASGI application (for requests that complete; streams use `Stream`)."""
    import httpx

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
