"""gateway_site.leases.Leases: the same behaviour from the in-process implementation and the one on a real Redis
server (tests/redis_server.py). Races run as concurrent coroutines; on Redis they are concurrent round trips. A
second handle stands for another process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest

from gateway_site.leases import Leases, MemoryLeases


@pytest.fixture(params=["memory", "redis"])
def make(request) -> Callable[[], Leases]:
    """`make()`: a handle on this test's own leases (every handle shares them, as processes do)."""
    if request.param == "memory":
        shared = MemoryLeases()
        return lambda: shared
    from gateway_site.redis_stores import RedisLeases

    url, prefix = request.getfixturevalue("redis_url"), f"test:{uuid.uuid4().hex}:"
    return lambda: RedisLeases(url, prefix=prefix)


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_acquire_holds_at_most_limit_places_and_release_gives_one_back(make):
    leases = make()
    assert [await leases.acquire("streams:u1", 2, lease, 60) for lease in ("a", "b", "c")] == [True, True, False]
    assert await leases.holders("streams:u1") == ["a", "b"]
    await leases.release("streams:u1", "a")
    await leases.release("streams:u1", "never-held")
    assert await leases.acquire("streams:u1", 2, "c", 60)
    assert await leases.holders("streams:u1") == ["b", "c"]
    assert await leases.acquire("streams:u2", 2, "a", 60)  # every key counts on its own
    assert await leases.holders("nobody") == []


async def test_twenty_concurrent_acquires_get_exactly_the_limit(make):
    leases = make()
    results = await asyncio.gather(*(leases.acquire("inflight-route:rt_1", 5, f"req_{i}", 60) for i in range(20)))
    assert results.count(True) == 5
    assert await leases.holders("inflight-route:rt_1") == sorted(f"req_{i}" for i, ok in enumerate(results) if ok)


async def test_concurrent_releases_and_acquires_never_overshoot(make):
    leases = make()
    for i in range(5):
        assert await leases.acquire("k", 5, f"old_{i}", 60)
    outcomes = await asyncio.gather(
        *(leases.release("k", f"old_{i}") for i in range(3)),
        *(leases.acquire("k", 5, f"new_{i}", 60) for i in range(20)),
    )
    won = [ok for ok in outcomes[3:] if ok]
    assert 0 <= len(won) <= 3 and len(await leases.holders("k")) == 2 + len(won) <= 5


async def test_a_held_lease_is_acquired_again_even_at_the_limit(make):
    leases = make()
    assert await leases.acquire("agent-sockets:o", 1, "dev_a", 60)
    assert await leases.acquire("agent-sockets:o", 1, "dev_a", 60)  # the device's new socket takes the same place
    assert not await leases.acquire("agent-sockets:o", 1, "dev_b", 60)
    assert await leases.holders("agent-sockets:o") == ["dev_a"]


async def test_renew_answers_whether_the_lease_is_still_held(make):
    leases = make()
    assert await leases.acquire("k", 3, "a", 60)
    assert await leases.renew("k", "a", 60)
    assert not await leases.renew("k", "b", 60) and not await leases.renew("other", "a", 60)
    await leases.release("k", "a")
    assert not await leases.renew("k", "a", 60)
    assert await leases.holders("k") == []


async def test_leases_nobody_renews_lapse_and_free_their_places(make):
    leases = make()
    assert await leases.acquire("k", 2, "crashed", 0.3)
    assert await leases.acquire("k", 2, "alive", 60)
    assert not await leases.acquire("k", 2, "newcomer", 60)

    async def lapsed() -> bool:
        return await leases.holders("k") == ["alive"]

    await eventually(lapsed)
    assert not await leases.renew("k", "crashed", 60)
    assert await leases.acquire("k", 2, "newcomer", 60)
    assert await leases.holders("k") == ["alive", "newcomer"]


async def test_renewing_keeps_a_lease_past_its_first_lifetime(make):
    leases = make()
    assert await leases.acquire("k", 1, "a", 0.5)
    started = time.monotonic()
    while time.monotonic() - started < 1.5:  # three lifetimes, renewed every 0.1 s
        assert await leases.renew("k", "a", 0.5)
        assert not await leases.acquire("k", 1, "b", 60)
        await asyncio.sleep(0.1)
    assert await leases.holders("k") == ["a"]


async def test_another_handle_counts_the_same_leases(make):
    here, there = make(), make()
    assert await here.acquire("streams:u", 2, "s1", 60) and await there.acquire("streams:u", 2, "s2", 60)
    assert not await here.acquire("streams:u", 2, "s3", 60)
    await there.release("streams:u", "s1")
    assert await here.holders("streams:u") == ["s2"]


async def test_redis_leaves_no_key_behind_once_its_leases_lapse(redis_url):
    from gateway_site.redis_state import client
    from gateway_site.redis_stores import RedisLeases

    prefix = f"test:{uuid.uuid4().hex}:"
    leases = RedisLeases(redis_url, prefix=prefix)
    assert await leases.acquire("k", 3, "a", 0.2) and await leases.acquire("k", 3, "b", 0.3)
    assert 0 < await client(redis_url).pttl(f"{prefix}lease:k") <= 300  # the set lives as long as its last lease

    async def gone() -> bool:
        return not await client(redis_url).exists(f"{prefix}lease:k")

    await eventually(gone)
