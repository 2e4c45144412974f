"""One log line per HTTP request and per WebSocket connection, for every route (Django views and consumers alike),
and the request counters of gateway_site.metrics for every HTTP request (webhook ingress counted apart as well).

Only the path is logged, never the query string, and path segments that are secrets (webhook route tokens, invite
tokens) are replaced, so tokens and bodies never reach the logs. The metrics never see the path at all.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from gateway_site import metrics
from gateway_site.clientip import client_ip_from_scope
from gateway_site.routing import INGRESS_PREFIX

logger = logging.getLogger("gateway.access")

_SECRET_PATHS = (
    (re.compile(r"^(/integrations/[^/]+/)[^/]+"), r"\1[redacted]"),
    (re.compile(r"^(/share/)[^/]+"), r"\1[redacted]"),
)


def redact_path(path: str) -> str:
    if not path.startswith(("/integrations/", "/share/")):  # the only paths that carry a secret segment
        return path
    for pattern, replacement in _SECRET_PATHS:
        path = pattern.sub(replacement, path, count=1)
    return path


class AccessLogMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def logged_send(message: dict[str, Any]) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):  # the latter: a refused upgrade
                status = message["status"]
            elif kind == "websocket.accept":
                status = 101
            elif kind == "websocket.close" and not status:
                status = 403
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            seconds = time.perf_counter() - started
            path = scope.get("path", "")
            if scope["type"] == "http":
                ingress = path.startswith(INGRESS_PREFIX)
                metrics.http_request(scope.get("method", ""), status or 500, seconds, ingress=ingress)
            fields = {
                "method": scope.get("method", "WS"),
                "path": redact_path(path),
                "status": status or 500,
                "duration_ms": round(seconds * 1000, 1),
                "client_ip": client_ip_from_scope(scope),
            }
            logger.info("request", extra={"fields": fields})
