"""tunnels.buffer.BufferStore: the same order, bounds, expiry and lock from the in-process store and the one on a real
Redis server (tests/redis_server.py)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tunnels.buffer import Entry, MemoryBuffer
from tunnels.inspector import new_request_id

MAX_BODIES = 1000
NOW = 1_000_000.0


@pytest.fixture(params=["memory", "redis"])
def store(request):
    if request.param == "memory":
        return MemoryBuffer(max_route_body_bytes=MAX_BODIES, max_total_bytes=8000)
    from tunnels.buffer_redis import RedisBuffer

    url = request.getfixturevalue("redis_url")
    return RedisBuffer(url, prefix=f"test:{uuid.uuid4().hex}:", max_route_body_bytes=MAX_BODIES, max_total_bytes=8000)


def entry(n: int, *, body: int = 10, expires: float = NOW + 60) -> Entry:
    return Entry(new_request_id(), expires, body, {"n": n, "body_base64": "x" * body})


async def test_oldest_first_and_removed_only_at_the_head(store):
    added = [entry(n) for n in range(3)]
    for value in added:
        assert (await store.push("rt_a", value, max_requests=10, now=NOW)).stored
    assert await store.count("rt_a") == 3 and await store.count("rt_b") == 0
    assert await store.head("rt_a") == added[0]
    assert not await store.remove("rt_a", added[1].request_id)  # not the head: nothing happens
    assert await store.remove("rt_a", added[0].request_id)
    assert not await store.remove("rt_a", added[0].request_id)
    assert (await store.head("rt_a")).frame == {"n": 1, "body_base64": "x" * 10}
    assert await store.stored_bytes() == sum(v.stored_size for v in added[1:])
    assert await store.drop_route("rt_a") == [v.request_id for v in added[1:]]
    assert await store.head("rt_a") is None and await store.stored_bytes() == 0


async def test_the_bounds(store):
    assert (await store.push("rt_a", entry(0), max_requests=2, now=NOW)).stored
    assert (await store.push("rt_a", entry(1), max_requests=2, now=NOW)).stored
    assert not (await store.push("rt_a", entry(2), max_requests=2, now=NOW)).stored  # max_requests
    assert await store.count("rt_a") == 2
    assert (await store.push("rt_b", entry(0, body=900), max_requests=10, now=NOW)).stored
    assert not (await store.push("rt_b", entry(1, body=101), max_requests=10, now=NOW)).stored  # the route's bodies
    assert (await store.push("rt_b", entry(2, body=100), max_requests=10, now=NOW)).stored
    # Over every route: 8000 bytes of stored frames; what was accepted stays.
    for route in ("rt_c", "rt_d", "rt_e", "rt_f", "rt_g", "rt_h"):
        await store.push(route, entry(0, body=990), max_requests=10, now=NOW)
    assert not (await store.push("rt_z", entry(0, body=990), max_requests=10, now=NOW)).stored
    assert await store.stored_bytes() <= 8000
    assert await store.count("rt_a") == 2 and await store.count("rt_b") == 2


async def test_expiry_at_the_head_and_the_sweep_of_dead_routes(store):
    soon, late = entry(0, expires=NOW + 10), entry(1, expires=NOW + 100)
    await store.push("rt_a", soon, max_requests=10, now=NOW)
    await store.push("rt_a", late, max_requests=10, now=NOW)
    gone = entry(0, expires=NOW + 10)
    await store.push("rt_dead", gone, max_requests=10, now=NOW)
    assert await store.expire("rt_a", NOW + 5) == []
    assert await store.expire("rt_a", NOW + 10) == [soon.request_id]  # the expiry itself is expired
    assert await store.head("rt_a") == late
    # Storing for any route sweeps the routes whose every entry expired, and the route's own expired head.
    fresh = entry(2, expires=NOW + 200)
    pushed = await store.push("rt_a", fresh, max_requests=10, now=NOW + 150)
    assert pushed.stored
    assert sorted(pushed.expired) == sorted([("rt_dead", gone.request_id), ("rt_a", late.request_id)])
    assert await store.count("rt_dead") == 0 and await store.count("rt_a") == 1
    assert await store.stored_bytes() == fresh.stored_size


async def test_the_drain_lock(store):
    assert await store.lock("rt_a", "one", 30)
    assert not await store.lock("rt_a", "two", 30)
    assert await store.lock("rt_b", "two", 30)  # per route
    assert await store.renew("rt_a", "one", 30) and not await store.renew("rt_a", "two", 30)
    await store.unlock("rt_a", "two")  # not the holder: nothing happens
    assert not await store.lock("rt_a", "two", 30)
    await store.unlock("rt_a", "one")
    assert await store.lock("rt_a", "two", 0.05)
    assert not await store.renew("rt_a", "one", 30)


async def test_a_lapsed_lock_can_be_taken(store):
    assert await store.lock("rt_a", "one", 0.05)
    deadline = asyncio.get_running_loop().time() + 5
    while not await store.lock("rt_a", "two", 30):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    assert not await store.renew("rt_a", "one", 30)


async def test_concurrent_pushes_keep_the_bound(store):
    results = await asyncio.gather(*(store.push("rt_c", entry(n), max_requests=5, now=NOW) for n in range(12)))
    assert sum(r.stored for r in results) == 5
    assert await store.count("rt_c") == 5
