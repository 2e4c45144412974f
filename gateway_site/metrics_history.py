"""A short in-process history of the main series (docs/operations.md, "History"), for the operator console.

Every `interval` seconds (10) a sampler task on the server's loop reads the live gauges and the counters of
gateway_site.metrics and keeps one point in a ring of `points` (90: fifteen minutes): the live gauges as they are,
the counters as rates over the interval, and the relay latency's p50 and p99 over the interval, estimated from the
histogram buckets as Prometheus's `histogram_quantile` does. `history()` and `totals()` return JSON-ready dicts.

The history is this process's own, gone when it stops; Prometheus is where metrics are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from prometheus_client.utils import floatToGoString

from gateway_site import metrics
from gateway_site.metrics import DIRECTIONS, GRANT_TYPES, HANDSHAKE_RESULTS, RATE_LIMIT_SCOPES, STREAM_KINDS

logger = logging.getLogger("gateway.metrics")

INTERVAL_SECONDS = 10.0
POINTS = 90
LATENCY = "gateway_relay_latency_seconds"
# The `le` label values of the relay latency buckets.
BUCKETS = tuple(floatToGoString(bound) for bound in metrics.RELAY_LATENCY_BUCKETS)  # type: ignore[no-untyped-call]


def quantile(q: float, cumulative: list[tuple[float, float]]) -> float | None:
    """The `q` quantile of a histogram given as (upper bound, cumulative count) pairs, ascending and ending with
    +Inf: linear within the bucket it falls in; the highest finite bound when it falls in the +Inf bucket; None
    without observations."""
    total = cumulative[-1][1] if cumulative else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in cumulative:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def _buckets(snapshot: metrics.Snapshot, direction: str) -> list[tuple[float, float]]:
    pairs = [(float(le), snapshot.get(f"{LATENCY}_bucket", direction=direction, le=le)) for le in BUCKETS]
    return [*pairs, (float("inf"), snapshot.get(f"{LATENCY}_bucket", direction=direction, le="+Inf"))]


def _live(snapshot: metrics.Snapshot, key: str) -> int | None:
    value = snapshot.live.get(key)
    return None if value is None else int(value)


def _ingress_5xx(snapshot: metrics.Snapshot) -> float:
    return sum(
        value
        for (name, pairs), value in snapshot.values.items()
        if name == "gateway_ingress_requests_total" and dict(pairs).get("code", "").startswith("5")
    )


class History:
    """The ring of points, and the task that fills it on the loop it was started on."""

    def __init__(
        self, *, points: int = POINTS, interval: float = INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.capacity = points
        self.clock = clock
        self._points: deque[dict[str, Any]] = deque(maxlen=points)
        self._previous: tuple[float, metrics.Snapshot] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling on the running loop (once; again after the loop that ran it has ended). Nothing while
        counting is off."""
        if not metrics.enabled() or (self._task is not None and not self._task.done()):
            return
        self._previous = (self.clock(), metrics.snapshot())
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sample()
            except Exception:  # one failed sample must not end the history
                logger.exception("metrics history sample failed")

    async def sample(self) -> dict[str, Any]:
        """Take one point now (the rates cover the time since the previous point) and keep it."""
        await metrics.refresh_live()
        now, current = self.clock(), metrics.snapshot()
        since, before = self._previous or (now, current)
        self._previous = (now, current)
        seconds = now - since

        def rate(after: float, earlier: float) -> float | None:
            return round((after - earlier) / seconds, 3) if seconds > 0 else None

        latency: dict[str, dict[str, float | None]] = {}
        for direction in DIRECTIONS:
            pairs = zip(_buckets(current, direction), _buckets(before, direction), strict=True)
            delta = [(bound, count - old) for (bound, count), (_, old) in pairs]
            latency[direction] = {
                name: None if (value := quantile(q, delta)) is None else round(value * 1000, 3)
                for name, q in (("p50_ms", 0.5), ("p99_ms", 0.99))
            }
        frames = "gateway_relay_frames_total"
        limited = "gateway_rate_limited_total"
        ingress = "gateway_ingress_requests_total"
        point = {
            "at": round(time.time(), 3),
            "agents": _live(current, "agents_connected"),
            "tunnels": _live(current, "tunnels_connected"),
            "sessions": _live(current, "sessions_live"),
            "streams": {kind: current.streams.get(kind) for kind in STREAM_KINDS},
            "frames_per_second": {
                direction: rate(current.get(frames, direction=direction), before.get(frames, direction=direction))
                for direction in DIRECTIONS
            },
            "ingress_per_second": rate(current.total(ingress), before.total(ingress)),
            "ingress_5xx_per_second": rate(_ingress_5xx(current), _ingress_5xx(before)),
            "rate_limited_per_second": rate(current.total(limited), before.total(limited)),
            "relay_latency": latency,
        }
        self._points.append(point)
        return point

    def as_dict(self) -> dict[str, Any]:
        """The points, oldest first."""
        return {
            "node": metrics.node(),
            "enabled": metrics.enabled(),
            "interval_seconds": self.interval,
            "capacity": self.capacity,
            "points": list(self._points),
        }


def totals() -> dict[str, Any]:
    """The counters since the process started and the live gauges of the last refresh."""
    now = metrics.snapshot()

    def count(name: str, **labels: str) -> int:
        return int(now.total(name, **labels))

    return {
        "node": metrics.node(),
        "enabled": metrics.enabled(),
        "agents": _live(now, "agents_connected"),
        "tunnels": _live(now, "tunnels_connected"),
        "sessions": _live(now, "sessions_live"),
        "streams": {kind: now.streams.get(kind) for kind in STREAM_KINDS},
        "frames": {d: count("gateway_relay_frames_total", direction=d) for d in DIRECTIONS},
        "bytes": {d: count("gateway_relay_bytes_total", direction=d) for d in DIRECTIONS},
        "ingress_requests": count("gateway_ingress_requests_total"),
        "ingress_5xx": int(_ingress_5xx(now)),
        "http_requests": count("gateway_http_requests_total"),
        "handshakes": {result: count("gateway_handshakes_total", result=result) for result in HANDSHAKE_RESULTS},
        "tokens_issued": {grant: count("gateway_oauth_tokens_issued_total", grant_type=grant) for grant in GRANT_TYPES},
        "rate_limited": {scope: count("gateway_rate_limited_total", scope=scope) for scope in RATE_LIMIT_SCOPES},
        "relay_latency_count": {d: count(f"{LATENCY}_count", direction=d) for d in DIRECTIONS},
    }


sampler = History()


def start() -> None:
    """Start this process's sampler on the running loop (gateway_site.lifecycle does, at the first ASGI event)."""
    sampler.start()


def history() -> dict[str, Any]:
    """This process's points, oldest first, with the interval and the ring's capacity."""
    return sampler.as_dict()
