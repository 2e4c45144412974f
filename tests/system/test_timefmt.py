"""Wire timestamps (gateway_site.timefmt): RFC 3339, UTC, whole seconds, `Z`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway_site.timefmt import rfc3339


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (0, "1970-01-01T00:00:00Z"),
        (1_764_892_800.999, "2025-12-05T00:00:00Z"),  # truncated, not rounded
        (1_764_892_801, "2025-12-05T00:00:01Z"),
        (1_764_892_800.5, "2025-12-05T00:00:00Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 999_999, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2026-01-02T03:04:05Z"),
    ],
)
def test_rfc3339(value, expected):
    assert rfc3339(value) == expected


def test_the_per_second_cache_follows_the_clock_both_ways():
    seconds = [1_764_892_800, 1_764_892_800.4, 1_764_892_801, 1_764_892_799, 1_764_892_801.9]
    assert [rfc3339(s) for s in seconds] == [
        datetime.fromtimestamp(int(s), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for s in seconds
    ]
