"""Channels routes: the two hot endpoints served on ASGI, SSE consumers ahead of Django, and the WebSocket consumers.

Streams answer GET only; any other method on their paths falls through to Django (CORS preflight, 405).
"""

from __future__ import annotations

from typing import Any

from relay.routing import stream_urlpatterns as relay_streams
from relay.routing import websocket_urlpatterns as relay_websockets
from tunnels.routing import websocket_urlpatterns as tunnel_websockets

http_consumer_routes: list[Any] = [*relay_streams]
websocket_routes: list[Any] = [*relay_websockets, *tunnel_websockets]


class GetOnly:
    """Send GET requests to `stream`, everything else to `fallback`."""

    def __init__(self, stream: Any, fallback: Any) -> None:
        self.stream = stream
        self.fallback = fallback

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope.get("method") == "GET":
            return await self.stream(scope, receive, send)
        return await self.fallback(scope, receive, send)


def _is_preflight(scope: dict[str, Any]) -> bool:
    names = {name.lower() for name, _ in scope.get("headers") or ()}
    return scope.get("method") == "OPTIONS" and b"origin" in names and b"access-control-request-method" in names


class HotPaths:
    """`POST …/messages` and webhook ingress go straight to their ASGI handlers; the rest to `fallback`.

    A CORS preflight (OPTIONS) for either path still goes to Django, which answers it.
    """

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        from relay import fastpath
        from tunnels import ingress

        path, method = scope.get("path", ""), scope.get("method")
        if method == "POST":
            match = fastpath.PATH.match(path)
            if match:
                return await fastpath.messages(scope, receive, send, match.group(1))
        if path.startswith("/integrations/") and not _is_preflight(scope):
            match = ingress.PATH.match(path)
            if match:
                return await ingress.ingress(scope, receive, send, match.group(1), match.group(2))
            return await ingress.not_found(scope, send)  # any other shape: 404 without reading the body
        return await self.fallback(scope, receive, send)


def _host(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"host":
            text = bytes(value).decode("latin-1").strip().lower()
            return text.rsplit(":", 1)[0] if not text.endswith("]") else text  # drop a port, keep [v6]
    return ""


class IngressHost:
    """With INGRESS_BASE_URL set (decisions.md H1), webhooks are served only on that host and that host serves
    nothing else: every other path there, and `/integrations/` on any other host, is a plain 404."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        from django.conf import settings

        ingress_host = settings.GATEWAY.ingress_host
        if not ingress_host or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        on_ingress_host = _host(scope) == ingress_host
        is_ingress = scope["type"] == "http" and scope.get("path", "").startswith("/integrations/")
        if on_ingress_host == is_ingress:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
            return None
        from gateway_site.asgi_http import respond_error
        from gateway_site.errors import not_found

        return await respond_error(send, scope, not_found())
