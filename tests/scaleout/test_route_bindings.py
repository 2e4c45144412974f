"""Which tunnel socket holds a route, across processes: the shared binding on a real Redis server
(tunnels.stores.RedisRouteBindings), and the requests a process forwards to its tunnels for another process's ingress
(tunnels.registry.ForwardedRequests)."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import pytest

from tunnels import registry
from tunnels.registry import ForwardedRequests
from tunnels.stores import RedisRouteBindings, RouteBinding


@pytest.fixture
def bindings(redis_url):
    return RedisRouteBindings(redis_url, prefix=f"test:{uuid.uuid4().hex}:")


async def test_taking_a_route_returns_the_binding_it_replaced(bindings):
    first = RouteBinding("node-a", "tun:1", "dev_1")
    second = RouteBinding("node-b", "tun:1", "dev_1")  # connection ids repeat across processes
    assert await bindings.get("rt_1") is None
    assert await bindings.take("rt_1", first) is None
    assert await bindings.get("rt_1") == first
    assert await bindings.take("rt_1", second) == first
    assert await bindings.get("rt_1") == second
    assert await bindings.get("rt_2") is None


async def test_only_the_holder_releases_a_route(bindings):
    old = RouteBinding("node-a", "tun:1", "dev_1")
    new = RouteBinding("node-b", "tun:7", "dev_1")
    await bindings.take("rt_1", old)
    await bindings.take("rt_1", new)
    assert not await bindings.release("rt_1", old)  # superseded: its late teardown leaves the new binding alone
    assert await bindings.get("rt_1") == new
    assert await bindings.release("rt_1", new)
    assert await bindings.get("rt_1") is None
    assert not await bindings.release("rt_1", new)


async def test_concurrent_takes_each_see_exactly_one_predecessor(bindings):
    takers = [RouteBinding(f"node-{n}", f"tun:{n}", "dev_1") for n in range(20)]
    replaced = await asyncio.gather(*(bindings.take("rt_race", b) for b in takers))
    final = await bindings.get("rt_race")
    # The takes form one chain: each binding was replaced at most once, and only the last one never was.
    assert replaced.count(None) == 1
    assert len({r for r in replaced if r is not None}) == 19
    assert final in takers and final not in replaced


def test_forwarded_requests_are_handed_back_once_and_fail_with_their_socket():
    table = ForwardedRequests()
    assert table.add("req_1", "node-a", "dev_1", "tun:1")
    assert table.add("req_2", "node-b", "dev_1", "tun:1")
    assert table.add("req_3", "node-a", "dev_2", "tun:2")
    entry = table.get("req_1")
    assert entry is not None and (entry.origin, entry.device_id) == ("node-a", "dev_1")
    assert table.pop("req_1") is not None and table.pop("req_1") is None
    assert table.take_connection("tun:1") == {"node-b": ["req_2"]}
    assert table.get("req_2") is None and table.count() == 1
    assert table.take_connection("tun:9") == {}


def test_forwarded_requests_expire_and_are_bounded(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(registry, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(registry, "MAX_INFLIGHT", 3)
    table = ForwardedRequests()
    assert all(table.add(f"req_{n}", "node-a", "dev_1", "tun:1") for n in range(3))
    assert not table.add("req_full", "node-a", "dev_1", "tun:1")
    clock[0] += registry.FORWARD_TTL_SECONDS + 1
    assert table.get("req_0") is None  # past every deadline: the sender has answered 504
    assert table.add("req_late", "node-a", "dev_1", "tun:1")  # the expired ones made room
    assert table.count() == 1
