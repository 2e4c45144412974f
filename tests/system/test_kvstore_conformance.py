"""gateway_site.kvstore.KeyValueStore: the same behaviour from the in-process store and the one on a real Redis server
(tests/redis_server.py). Races run as concurrent coroutines; on Redis they are concurrent round trips. A second
handle on the same store stands for another process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
from asgiref.sync import sync_to_async

from gateway_site.kvstore import KeyValueStore, MemoryKeyValueStore, blocking

Factory = Callable[..., KeyValueStore]


@pytest.fixture(params=["memory", "redis"])
def make(request) -> Factory:
    """`make(name, ttl)`: a handle on store `name` in this test's own key space."""
    space = uuid.uuid4().hex
    if request.param == "memory":
        return lambda name, ttl=60: MemoryKeyValueStore(f"{space}:{name}", ttl=ttl, max_entries=1000)
    from gateway_site.redis_stores import RedisKeyValueStore

    url = request.getfixturevalue("redis_url")
    return lambda name, ttl=60: RedisKeyValueStore(name, ttl=ttl, url=url, prefix=f"test:{space}:")


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_set_get_and_delete_keep_json_values(make):
    store = make("values")
    snapshot = {"route_id": "rt_1", "token_expires_at": 1767225600.25, "deadline_ms": 2500, "nested": [1, "a", None]}
    for key, value in [("snap", snapshot), ("empty", {}), ("text", "hé"), ("flag", True), ("n", 7)]:
        await store.set(key, value)
        assert await store.get(key) == value
    await store.set("snap", {"replaced": 1})
    assert await store.get("snap") == {"replaced": 1}
    await store.delete("snap")
    await store.delete("never-set")
    assert await store.get("snap") is None and await store.get("never-set") is None


async def test_twenty_concurrent_adds_make_exactly_one_claim(make):
    store = make("claims")
    results = await asyncio.gather(*(store.add("jti-1", f"claimant-{i}") for i in range(20)))
    assert results.count(True) == 1
    assert await store.get("jti-1") == f"claimant-{results.index(True)}"
    assert await store.add("jti-2")  # another key is another claim
    assert await store.get("jti-2") is True


async def test_twenty_concurrent_increments_are_all_counted(make):
    store = make("counters")
    results = await asyncio.gather(*(store.incr("ingress:ip:203.0.113.9:1") for _ in range(20)))
    assert sorted(results) == list(range(1, 21))
    assert await store.get("ingress:ip:203.0.113.9:1") == 20
    assert await store.incr("other") == 1


async def test_entries_expire_with_the_stores_lifetime(make):
    store = make("short", ttl=0.3)
    await store.set("snap", {"a": 1})
    assert await store.add("claim")
    assert await store.incr("count") == 1

    async def all_gone() -> bool:
        return await store.get("snap") is None and await store.get("claim") is None and await store.get("count") is None

    await eventually(all_gone)
    assert await store.add("claim")  # the expired claim can be made again
    assert await store.incr("count") == 1  # an expired counter starts again at one


async def test_increments_do_not_extend_a_counters_lifetime(make):
    store = make("window", ttl=0.4)
    assert await store.incr("bucket") == 1

    async def restarted() -> bool:  # incrementing all along: the window still ends
        return await store.incr("bucket") == 1

    await eventually(restarted)


async def test_another_handle_on_the_store_sees_writes_and_deletions(make):
    here, there = make("route-snapshots"), make("route-snapshots")
    await here.set("rt_1", {"status": "active"})
    assert await there.get("rt_1") == {"status": "active"}
    await there.delete("rt_1")  # a route changed in another process: the snapshot is gone everywhere
    assert await here.get("rt_1") is None
    assert await here.add("once") and not await there.add("once")
    assert await here.incr("n") == 1 and await there.incr("n") == 2
    assert await make("elsewhere").get("n") is None  # stores do not share keys


async def test_blocking_serves_sync_code_in_a_worker_thread(make):
    store = make("sync")

    def sync_caller() -> tuple[int, bool, bool, object]:
        facade = blocking(store)
        facade.set("snap", {"a": 1})
        facade.delete("snap")
        return facade.incr("k"), facade.add("c"), facade.add("c"), facade.get("snap")

    assert await sync_to_async(sync_caller)() == (1, True, False, None)
    assert await store.get("k") == 1
