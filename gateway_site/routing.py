"""Channels routes: SSE consumers served ahead of Django in the `http` branch, and the WebSocket consumers.

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
    """Send GET (and HEAD) requests to `stream`, everything else to `fallback`."""

    def __init__(self, stream: Any, fallback: Any) -> None:
        self.stream = stream
        self.fallback = fallback

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope.get("method") == "GET":
            return await self.stream(scope, receive, send)
        return await self.fallback(scope, receive, send)
