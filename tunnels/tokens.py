"""Route ids and route tokens (docs/protocol/tunnels.md §1; tests/vectors/routes.json)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

ROUTE_ID_RE = re.compile(r"rt_[a-f0-9]{32}")
TOKEN_CHARS_RE = re.compile(r"[A-Za-z0-9_-]+")


def new_route_id() -> str:
    return "rt_" + secrets.token_hex(16)


def new_token() -> str:
    """base64url without padding of 32 random bytes: 43 characters."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def hashes_equal(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


MIN_DISTINCT_CHARACTERS = 16  # a random 43-character token has about 32


def token_problem(token: str) -> str | None:
    """Why a caller-chosen token is refused (422 `token_validation_failed`), or None."""
    if len(token) < 43:
        return "route_token must be at least 43 characters"
    if len(token) > 128:
        return "route_token must be at most 128 characters"
    if not TOKEN_CHARS_RE.fullmatch(token):
        return "route_token must contain only [A-Za-z0-9_-]"
    if len(set(token)) < MIN_DISTINCT_CHARACTERS:
        return "route_token is too weak"  # "aaaa…" or "abab…" would be guessed, however long
    return None
