"""Channel-layer group names of the relay (letters, digits, `-_.` only, under 100 characters)."""

from __future__ import annotations

import hashlib


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:40]


def user_group(uid: str) -> str:
    """Device-change notifications for one user (uids may hold any character, so they are hashed)."""
    return f"relay.user.{_digest(uid)}"
