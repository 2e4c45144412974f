"""Redirect URI allowlist (docs/protocol/oauth.md §3.6): exact match, or the native-app loopback any-port rule."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import SplitResult, urlsplit

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def _split(uri: str) -> SplitResult | None:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        return None
    return parts


def _is_loopback_http(parts: SplitResult) -> bool:
    return parts.scheme.lower() == "http" and (parts.hostname or "") in LOOPBACK_HOSTS


def redirect_allowed(candidate: str, allowlist: Iterable[str]) -> bool:
    """True when `candidate` may receive authorization codes."""
    candidate = candidate.strip()
    if not candidate or "#" in candidate:  # a fragment is refused like any unlisted URI (decisions.md H6)
        return False
    parts = _split(candidate)
    if parts is None:
        return False
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return False
    entries = [entry.strip() for entry in allowlist]
    if candidate in entries:
        return True
    if not (_is_loopback_http(parts) and parts.port is not None):
        return False
    for entry in entries:
        allowed = _split(entry)
        if (
            allowed is not None
            and _is_loopback_http(allowed)
            and (allowed.path, allowed.query) == (parts.path, parts.query)
        ):
            return True
    return False
