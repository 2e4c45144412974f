"""The hardening items of bench/hardening_ab.py, each switched off on its own: bench only, never shipped.

A variant's settings module (bench/settings_no_*.py) names the item in `BENCH_SWITCHED_OFF` and adds the app below;
its `ready()` replaces the item's checking functions with no-ops in the server process, once Django is set up (the
gateway's modules are not importable earlier). Items that already have a setting (metrics, the inspector) or a
pluggable class (the session store, for the per-device cap and the backlog byte budget) use that instead of a patch.
`switch_off(item)` returns the function that puts everything back (the smoke test switches items in its own process).

What each item turns off:
- "caps" (decisions.md H3 count caps): live sessions per device (a session store that ignores `per_device_limit`),
  open SSE streams per user (`OpenStreams.admit/renew/release`: no lease is taken) and webhooks in flight per route
  and per owner (`tunnels.services.inflight_claim/inflight_release`: no lease is taken);
- "budgets" (H3 byte budgets): the replay backlog's byte accounting (a session store that keeps the newest 1000
  events by count only, without sizing them) and the bytes queued per SSE reader (no transport probe, nothing
  counted as buffered, never over budget);
- "depth" (H9): `safejson.loads` without the bracket count and depth walk (any parse failure is still `InvalidJson`);
- "ratelimits": `ratelimit.hit` and `ratelimit.hit_blocking` allow every request without counting it (ingress per IP,
  route and global, replay, OAuth);
- "metrics": METRICS_ENABLED=false (the settings module's GATEWAY); "inspector": GATEWAY_INSPECTOR_ENABLED = False.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

from django.apps import AppConfig

from relay.session_store import BACKLOG_LIMIT, MemorySessionStore, Session

ITEMS = ("caps", "budgets", "depth", "ratelimits", "metrics", "inspector")


class NoDeviceCapSessionStore(MemorySessionStore):
    """The memory store, without the live-sessions-per-device cap."""

    async def create(self, record: Session, *, per_device_limit: int | None = None) -> tuple[Session, bool]:
        return await super().create(record, per_device_limit=None)


class CountOnlyBacklogSessionStore(MemorySessionStore):
    """The memory store, whose backlogs keep the newest BACKLOG_LIMIT events without sizing them."""

    def _append(self, session_id: str, name: str, data: str, max_bytes: int | None) -> int:
        event_id = next(self._event_ids)
        backlog = self._backlogs.setdefault(session_id, deque())
        backlog.append((event_id, name, data, 0))
        if len(backlog) > BACKLOG_LIMIT:
            backlog.popleft()
        return event_id


def _patch(target: Any, name: str, value: Any, undo: list[Callable[[], None]]) -> None:
    original = getattr(target, name)
    setattr(target, name, value)
    undo.append(lambda: setattr(target, name, original))


async def _nothing(*args: Any, **kwargs: Any) -> None:
    return None


async def _allowed(*args: Any, **kwargs: Any) -> bool:
    return True


def _caps(undo: list[Callable[[], None]]) -> None:
    from gateway_site.sse import OpenStreams
    from tunnels import services

    for name in ("admit", "renew", "release"):
        _patch(OpenStreams, name, _nothing, undo)
    _patch(services, "inflight_claim", _nothing, undo)
    _patch(services, "inflight_release", _nothing, undo)


def _budgets(undo: list[Callable[[], None]]) -> None:
    from gateway_site import transport
    from gateway_site.sse import SseConsumer

    _patch(transport, "probe_for", lambda send: None, undo)
    _patch(SseConsumer, "buffered_bytes", lambda self: 0, undo)
    _patch(SseConsumer, "over_budget", lambda self, extra=0: False, undo)


def _depth(undo: list[Callable[[], None]]) -> None:
    from gateway_site import safejson

    def loads(raw: str | bytes) -> Any:
        try:
            return json.loads(raw)
        except (ValueError, RecursionError, TypeError):
            raise safejson.InvalidJson("invalid json") from None

    _patch(safejson, "loads", loads, undo)


def _ratelimits(undo: list[Callable[[], None]]) -> None:
    from gateway_site import ratelimit

    _patch(ratelimit, "hit", _allowed, undo)
    _patch(ratelimit, "hit_blocking", lambda *args, **kwargs: True, undo)


PATCHES: dict[str, Callable[[list[Callable[[], None]]], None]] = {
    "caps": _caps,
    "budgets": _budgets,
    "depth": _depth,
    "ratelimits": _ratelimits,
}


def switch_off(item: str) -> Callable[[], None]:
    """Replace `item`'s checking functions in this process; returns what undoes it (items without patches: nothing
    to undo, their switch is a setting)."""
    if item not in ITEMS:
        raise ValueError(f"no hardening item {item!r} (one of {', '.join(ITEMS)})")
    undo: list[Callable[[], None]] = []
    if item in PATCHES:
        PATCHES[item](undo)

    def restore() -> None:
        for step in reversed(undo):
            step()

    return restore


class Switches(AppConfig):
    """Added to INSTALLED_APPS by a variant's settings module: switches off `settings.BENCH_SWITCHED_OFF`."""

    name = "bench"
    label = "bench_switches"

    def ready(self) -> None:
        from django.conf import settings

        switch_off(getattr(settings, "BENCH_SWITCHED_OFF", ""))
