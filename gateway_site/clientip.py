"""The client IP used for rate limits and logs (docs/protocol/decisions.md O9, docs/protocol/config.md §8).

With PROXY_HEADER set, the first address of that header wins; otherwise (or when it is missing or empty) the TCP
peer. Trusting the header is only safe when the gateway is reachable through the proxy alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest


def from_header_value(value: str) -> str:
    return normalise(value.split(",", 1)[0].strip())


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
