"""Small helpers for the two endpoints served directly on ASGI, ahead of Django, because they are the hottest:
relayed client messages and webhook ingress. Measured here, Django's per-request machinery (its middleware chain
and a thread pool created and torn down per request) cost more than half of their throughput (docs/performance.md).

They keep the contract's behaviour: the same JSON errors, CORS headers and security headers as the Django views.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from gateway_site import cors, jsonbody
from gateway_site.errors import JSON_CONTENT_TYPE, ApiError, render

Headers = list[tuple[bytes, bytes]]
SECURITY_HEADERS: Headers = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


def header(scope: Mapping[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def query_param(scope: Mapping[str, Any], name: str) -> str | None:
    """The first value of a query parameter (blank values kept), or None when absent."""
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True).get(name)
    return values[0] if values else None


async def read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def read_body_capped(receive: Any, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows past `limit` bytes (the rest is not read)."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def cors_headers(scope: Mapping[str, Any]) -> Headers:
    """The CORS headers of an actual (non-preflight) response (gateway_site.cors, docs/protocol/config.md §7):
    `Vary: origin` unless every origin is allowed, and the allow-origin headers for an allowed origin."""
    headers: Headers = [] if cors.all_origins_allowed() else [(b"vary", b"origin")]
    allowed = cors.allow_origin_headers(header(scope, b"origin"))
    return headers + [(name.encode("latin-1"), value.encode("latin-1")) for name, value in allowed]


async def respond(
    send: Any,
    scope: Mapping[str, Any],
    status: int,
    body: bytes,
    content_type: str,
    extra: Iterable[tuple[str, str]] = (),
) -> None:
    headers: Headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra]
    headers += SECURITY_HEADERS + cors_headers(scope)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Any, scope: Mapping[str, Any], status: int, data: Any) -> None:
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    await respond(send, scope, status, body, JSON_CONTENT_TYPE)


async def respond_error(
    send: Any, scope: Mapping[str, Any], error: ApiError, extra: Iterable[tuple[str, str]] = ()
) -> None:
    """`error` as gateway_site.errors.render renders it, with `extra` headers before the error's own."""
    rendered = render(error)
    await respond(send, scope, rendered.status, rendered.body, rendered.content_type, [*extra, *rendered.headers])


def json_object(scope: Mapping[str, Any], body: bytes, error: ApiError) -> dict[str, Any]:
    """As gateway_site.jsonbody.json_object, for a raw ASGI request."""
    return jsonbody.parse_object(body, header(scope, b"content-type"), error)
