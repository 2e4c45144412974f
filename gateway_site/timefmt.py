"""Timestamps on the wire: RFC 3339 in UTC, whole seconds, `Z` suffix (`2006-01-02T15:04:05Z`)."""

from __future__ import annotations

from datetime import UTC, datetime

RFC3339_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# The last whole second formatted from Unix seconds: every frame relayed within one second carries the same
# `received_at`, so it is formatted once per second, not once per frame.
_last: tuple[int, str] = (-1, "")


def rfc3339(value: datetime | float | None) -> str:
    """An aware datetime, or Unix seconds (truncated to whole seconds), as RFC 3339; None is ''."""
    global _last
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(RFC3339_FORMAT)
    second = int(value)
    last = _last
    if last[0] == second:
        return last[1]
    text = datetime.fromtimestamp(second, tz=UTC).strftime(RFC3339_FORMAT)
    _last = (second, text)
    return text


def rfc3339_now() -> str:
    return datetime.now(tz=UTC).strftime(RFC3339_FORMAT)
