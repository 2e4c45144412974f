"""gateway_site.metrics_history: the ring of points the operator console will show, and the totals."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway_site import metrics, metrics_history
from gateway_site.metrics_history import History, quantile
from tests.metrics.conftest import NODE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def latency(seconds: float) -> float:
    """A perf_counter start that makes the relay latency observed now about `seconds`."""
    return time.perf_counter() - seconds


def test_quantiles_follow_the_buckets_as_prometheus_does():
    buckets = [(0.001, 0.0), (0.0025, 50.0), (0.005, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.0025)
    assert quantile(0.99, buckets) == pytest.approx(0.00495)
    assert quantile(0.5, [(0.001, 0.0), (float("inf"), 0.0)]) is None  # nothing observed
    assert quantile(0.99, [(0.001, 1.0), (2.5, 1.0), (float("inf"), 10.0)]) == 2.5  # beyond the last bound
    assert quantile(0.5, [(0.001, 4.0), (float("inf"), 4.0)]) == pytest.approx(0.0005)


async def test_points_hold_gauges_rates_and_latency_quantiles():
    clock = Clock()
    history = History(points=90, interval=10, clock=clock)
    first = await history.sample()
    assert first["frames_per_second"] == {"agent_to_client": None, "client_to_agent": None}  # no interval yet
    assert first["agents"] == 0 and first["sessions"] == 0 and first["tunnels"] == 0
    assert first["streams"] == {"session": 0, "devices": 0}

    for _ in range(20):
        metrics.client_frame_relayed(100, latency(0.003))  # bucket 0.0025-0.005
    received = metrics.agent_frame_received()
    for _ in range(50):
        metrics.agent_frame_relayed(10, received)
    for code in (201, 201, 502, 504):
        metrics.http_request("POST", code, 0.01, ingress=True)
    metrics.rate_limited("ip")
    clock.now += 10
    point = await history.sample()
    assert point["frames_per_second"] == {"agent_to_client": 5.0, "client_to_agent": 2.0}
    assert point["ingress_per_second"] == 0.4
    assert point["ingress_5xx_per_second"] == 0.2
    assert point["rate_limited_per_second"] == 0.1
    c2a = point["relay_latency"]["client_to_agent"]
    assert 2.5 <= c2a["p50_ms"] <= 5.0 and 2.5 <= c2a["p99_ms"] <= 10.0
    assert point["relay_latency"]["agent_to_client"]["p99_ms"] is not None

    clock.now += 10  # a quiet interval: zero rates, no latency
    quiet = await history.sample()
    assert quiet["frames_per_second"] == {"agent_to_client": 0.0, "client_to_agent": 0.0}
    assert quiet["relay_latency"]["client_to_agent"] == {"p50_ms": None, "p99_ms": None}
    document = history.as_dict()
    assert document["node"] == NODE and document["interval_seconds"] == 10 and document["capacity"] == 90
    assert [p["at"] for p in document["points"]] == [first["at"], point["at"], quiet["at"]]


async def test_the_ring_keeps_the_newest_points_and_the_task_samples_on_its_interval():
    history = History(points=3, interval=0.02)
    history.start()
    history.start()  # once
    try:
        deadline = time.monotonic() + 10
        while len(history.as_dict()["points"]) < 3 or history._points[0] is history._points[-1]:
            assert time.monotonic() < deadline, "the sampler did not run"
            await asyncio.sleep(0.02)
        seen = list(history._points)
        while history._points[0] is seen[0]:  # a fourth point pushes the first out
            assert time.monotonic() < deadline, "the sampler stopped"
            await asyncio.sleep(0.02)
        assert len(history.as_dict()["points"]) == 3
    finally:
        await history.stop()


async def test_nothing_is_sampled_while_counting_is_off():
    metrics.configure(node_id=NODE, enabled=False)
    history = History(interval=0.01)
    history.start()
    assert history._task is None
    assert metrics_history.totals()["enabled"] is False


async def test_totals_add_up_what_was_counted():
    metrics.client_frame_relayed(40, latency(0.001))
    metrics.client_frame_relayed(60, latency(0.001))
    metrics.token_issued("client_credentials")
    metrics.handshake("ok")
    metrics.rate_limited("oauth")
    metrics.http_request("GET", 200, 0.001, ingress=False)
    metrics.http_request("POST", 503, 0.001, ingress=True)
    await metrics.refresh_live()
    totals = metrics_history.totals()
    assert totals["node"] == NODE and totals["enabled"] is True
    assert totals["frames"] == {"agent_to_client": 0, "client_to_agent": 2}
    assert totals["bytes"] == {"agent_to_client": 0, "client_to_agent": 100}
    assert totals["tokens_issued"] == {"authorization_code": 0, "refresh_token": 0, "client_credentials": 1}
    assert totals["handshakes"] == {"ok": 1, "failed": 0}
    assert totals["rate_limited"] == {"global": 0, "ip": 0, "route": 0, "oauth": 1}
    assert (totals["http_requests"], totals["ingress_requests"], totals["ingress_5xx"]) == (2, 1, 1)
    assert (totals["agents"], totals["tunnels"], totals["sessions"]) == (0, 0, 0)
    assert totals["relay_latency_count"] == {"agent_to_client": 0, "client_to_agent": 2}
