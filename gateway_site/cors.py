"""CORS (docs/protocol/config.md §7): the one policy behind the Django middleware (gateway_site.middleware) and the
ASGI edges served ahead of Django (gateway_site.asgi_http: fast paths, event streams, webhook ingress).

The configuration is the django-cors-headers settings that settings.py derives from ALLOW_ORIGINS.
"""

from __future__ import annotations

from django.conf import settings

ALLOW_ORIGIN = "access-control-allow-origin"
ALLOW_CREDENTIALS = "access-control-allow-credentials"
ALLOW_METHODS = "access-control-allow-methods"
ALLOW_HEADERS = "access-control-allow-headers"
# A preflight varies on these (docs/protocol/config.md §7).
PREFLIGHT_VARY = ("Access-Control-Request-Method", "Access-Control-Request-Headers", "Origin")


def all_origins_allowed() -> bool:
    return bool(settings.CORS_ALLOW_ALL_ORIGINS)


def is_preflight(method: str | None, has_origin: bool, has_request_method: bool) -> bool:
    """`OPTIONS` with `Origin` and `Access-Control-Request-Method`: answered at once with 204."""
    return method == "OPTIONS" and has_origin and has_request_method


def allow_origin_headers(origin: str | None) -> list[tuple[str, str]]:
    """For an allowed `origin`: `*` when every origin is, else the origin as sent with credentials; [] otherwise.

    Origins match the ALLOW_ORIGINS patterns case-insensitively; without `*`, credentials are allowed.
    """
    if not origin:
        return []
    if all_origins_allowed():
        return [(ALLOW_ORIGIN, "*")]
    if any(pattern.match(origin) for pattern in settings.CORS_ALLOWED_ORIGIN_REGEXES):
        return [(ALLOW_ORIGIN, origin), (ALLOW_CREDENTIALS, "true")]
    return []


def allowed_methods() -> str:
    return ", ".join(settings.CORS_ALLOW_METHODS)


def allowed_headers() -> str:
    return ", ".join(settings.CORS_ALLOW_HEADERS)
