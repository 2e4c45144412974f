"""The client IP used for rate limits and logs (docs/protocol/decisions.md O9 and H4, docs/protocol/config.md §8).

With PROXY_HEADER set, the address comes from that header; otherwise (or when it is missing or empty) from the TCP
peer. A comma-separated header (`X-Forwarded-For`) is read from the right: each proxy appends the address it saw, so
the client is the entry PROXY_TRUSTED_HOPS places from the right (the left part is whatever the client wrote). A
header with one value (`CF-Connecting-IP`, `Fly-Client-IP`) is used whole. Trusting the header is only safe when
the gateway is reachable through the proxies alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest


def from_header_value(value: str, hops: int | None = None) -> str:
    entries = [entry.strip() for entry in value.split(",")]
    entries = [entry for entry in entries if entry]
    if not entries:
        return ""
    hops = settings.GATEWAY.proxy_trusted_hops if hops is None else hops
    return normalise(entries[-hops] if len(entries) >= hops else entries[0])


def normalise(text: str) -> str:
    """An address in its canonical form; anything else (a caller can put any text in a proxy header) becomes
    `invalid`, so it never names a rate-limit bucket of its own or reaches a log line raw."""
    if not text:
        return ""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return "invalid"


def client_ip_from_scope(scope: Mapping[str, Any]) -> str:
    """The client IP of an ASGI connection scope."""
    header = settings.GATEWAY.proxy_header.lower().encode("latin-1")
    if header:
        headers: Iterable[tuple[bytes, bytes]] = scope.get("headers") or ()
        for name, value in headers:
            if name.lower() == header:
                ip = from_header_value(value.decode("latin-1"))
                if ip:
                    return ip
    client = scope.get("client")
    return str(client[0]) if client else ""


def client_ip_from_request(request: HttpRequest) -> str:
    """The client IP of a Django request (ASGI in production, WSGI under the test client)."""
    scope = getattr(request, "scope", None)
    if scope is not None:
        return client_ip_from_scope(scope)
    header = settings.GATEWAY.proxy_header
    if header:
        ip = from_header_value(request.headers.get(header, ""))
        if ip:
            return ip
    return str(request.META.get("REMOTE_ADDR", ""))
