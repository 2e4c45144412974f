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
        return await self.fallback(scope, receive, send)
