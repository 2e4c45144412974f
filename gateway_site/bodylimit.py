"""ASGI body limit in front of everything: bodies over the cap get the framework 413 before Django reads them.

Django would otherwise spool any size and then answer 400 (docs/platform-notes.md §6). A declared Content-Length over
the cap is refused at once; a chunked body is counted as it arrives. Under uvicorn this stops the upload early; Daphne
reads the whole body before calling the application, so there it only bounds what the application keeps.
"""

from __future__ import annotations

from typing import Any

from gateway_site.errors import JSON_CONTENT_TYPE, framework_body

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyLimitMiddleware:
    """`max_bytes` everywhere, except below `ingress_prefix`: webhook ingress has routes of up to 5 MiB (the
    upstream's 4 MiB cap below that maximum is a defect, docs/protocol/tunnels.md §9) and answers with a plain-text
    413."""

    def __init__(self, app: Any, max_bytes: int, *, ingress_prefix: str = "", ingress_max_bytes: int = 0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.ingress_prefix = ingress_prefix
        self.ingress_max_bytes = ingress_max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ingress = bool(self.ingress_prefix) and scope.get("path", "").startswith(self.ingress_prefix)
        limit = self.ingress_max_bytes if ingress else self.max_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_413(send, plain=ingress)
            return
        # Read the body here (bounded), then replay it to the application as one message.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away before finishing its body: nothing to answer.
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send_413(send, plain=ingress)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Any, *, plain: bool = False) -> None:
    body = b"Request Entity Too Large" if plain else framework_body(413)
    content_type = b"text/plain; charset=utf-8" if plain else JSON_CONTENT_TYPE.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
