"""Channels routes: the two hot endpoints served on ASGI, SSE consumers ahead of Django, and the WebSocket consumers.

The apps' routes and handlers are named in settings by import string (GATEWAY_STREAM_ROUTES, GATEWAY_WEBSOCKET_ROUTES,
GATEWAY_MESSAGES_ROUTE, GATEWAY_INGRESS_ROUTE) and loaded once, on first use, so this package imports no app.
Streams answer GET only; any other method on their paths falls through to Django (CORS preflight, 405).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

INGRESS_PREFIX = "/integrations/"


def _routes(dotted_paths: list[str]) -> list[Any]:
    return [route for dotted in dotted_paths for route in import_string(dotted)]


@functools.cache
def stream_routes() -> list[Any]:
    """The apps' SSE consumers (settings.GATEWAY_STREAM_ROUTES), served ahead of Django for GET."""
    return _routes(settings.GATEWAY_STREAM_ROUTES)


@functools.cache
def socket_routes() -> list[Any]:
    """The apps' WebSocket consumers (settings.GATEWAY_WEBSOCKET_ROUTES)."""
    return _routes(settings.GATEWAY_WEBSOCKET_ROUTES)


def __getattr__(name: str) -> Any:
    # The route lists under their former module-level names, loaded on first access.
    if name == "http_consumer_routes":
        return stream_routes()
    if name == "websocket_routes":
        return socket_routes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


@dataclass(frozen=True)
class _HotHandlers:
    messages_path: re.Pattern[str]
    messages: Any  # (scope, receive, send, session_id)
    ingress_path: re.Pattern[str]
    ingress: Any  # (scope, receive, send, route_id, route_token)
    ingress_not_found: Any  # (scope, send)


@functools.cache
def _hot_handlers() -> _HotHandlers:
    messages_path, messages = settings.GATEWAY_MESSAGES_ROUTE
    ingress_path, ingress, not_found = settings.GATEWAY_INGRESS_ROUTE
    return _HotHandlers(
        import_string(messages_path),
        import_string(messages),
        import_string(ingress_path),
        import_string(ingress),
        import_string(not_found),
    )


class HotPaths:
    """`POST …/messages` and webhook ingress go straight to their ASGI handlers; the rest to `fallback`.

    A CORS preflight (OPTIONS) for either path still goes to Django, which answers it.
    """

    def __init__(self, fallback: Any) -> None:
        self.fallback = fallback

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        hot = _hot_handlers()
        path, method = scope.get("path", ""), scope.get("method")
        if method == "POST":
            match = hot.messages_path.match(path)
            if match:
                return await hot.messages(scope, receive, send, match.group(1))
        if path.startswith(INGRESS_PREFIX) and not _is_preflight(scope):
            match = hot.ingress_path.match(path)
            if match:
                return await hot.ingress(scope, receive, send, match.group(1), match.group(2))
            return await hot.ingress_not_found(scope, send)  # any other shape: 404 without reading the body
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
        ingress_host = settings.GATEWAY.ingress_host
        if not ingress_host or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        on_ingress_host = _host(scope) == ingress_host
        is_ingress = scope["type"] == "http" and scope.get("path", "").startswith(INGRESS_PREFIX)
        if on_ingress_host == is_ingress:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1008})
            return None
        from gateway_site.asgi_http import respond_error
        from gateway_site.errors import not_found

        return await respond_error(send, scope, not_found())
