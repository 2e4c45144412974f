"""Timestamps on the wire: RFC 3339 in UTC, whole seconds, `Z` suffix (`2006-01-02T15:04:05Z`)."""

from __future__ import annotations

from datetime import UTC, datetime

RFC3339_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(value: datetime | float | None) -> str:
    """An aware datetime, or Unix seconds (truncated to whole seconds), as RFC 3339; None is ''."""
    if value is None:
        return ""
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(int(value), tz=UTC)
    return value.astimezone(UTC).strftime(RFC3339_FORMAT)


def rfc3339_now() -> str:
    return datetime.now(tz=UTC).strftime(RFC3339_FORMAT)
