"""ASGI body limit in front of everything: bodies over the cap get the framework 413, counted as they are read.

Django would otherwise spool any size and then answer 400 (docs/platform-notes.md §6). A declared Content-Length over
the cap is refused at once; a chunked body is counted as it arrives. Under uvicorn this stops the upload early; Daphne
reads the whole body before calling the application, so there it only bounds what the application keeps.
"""

from __future__ import annotations

from typing import Any

from gateway_site.errors import PlainError, payload_too_large, render

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
        # Count the body as the application reads it: nothing is buffered here, and an application that answers
        # without reading (webhook ingress for an unknown route) never pulls the body at all. Past the limit the
        # client gets the 413 and the application sees a disconnect (Django then gives up on the request).
        size = 0
        refused = False

        async def counted() -> Message:
            nonlocal size, refused
            if refused:
                return {"type": "http.disconnect"}
            message: Message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    refused = True
                    await _send_413(send, plain=ingress)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, guarded)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Any, *, plain: bool = False) -> None:
    rendered = render(PlainError(413) if plain else payload_too_large())
    headers = [*rendered.asgi_headers(content_length=True), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": rendered.body, "more_body": False})
