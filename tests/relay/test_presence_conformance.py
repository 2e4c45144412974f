"""relay.stores.PresenceStore: the same behaviour from the in-process store and the one on a real Redis server
(tests/redis_server.py). Races run as concurrent coroutines; on Redis they are concurrent round trips."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from relay.stores import (
    LAST_SEEN_DEBOUNCE_SECONDS,
    PRESENCE_KEEP_SECONDS,
    PRESENCE_TTL_SECONDS,
    MemoryPresenceStore,
    Presence,
    PresenceStore,
)


@pytest.fixture(params=["memory", "redis"])
def store(request) -> PresenceStore:
    if request.param == "memory":
        return MemoryPresenceStore()
    from relay.redis_presence import RedisPresenceStore

    return RedisPresenceStore(request.getfixturevalue("redis_url"), prefix=f"test:{uuid.uuid4().hex}:")


async def test_mark_online_records_the_connection_and_its_process(store):
    now = int(time.time())
    record = await store.mark_online("dev_a", "agt:1", "node-1", now=now)
    assert record == Presence("agt:1", "node-1", now, now, now + PRESENCE_TTL_SECONDS)
    assert await store.get("dev_a") == record
    assert record.online(now + PRESENCE_TTL_SECONDS) and not record.online(now + PRESENCE_TTL_SECONDS + 1)
    assert await store.get("dev_never") is None


async def test_the_newest_connection_replaces_the_record(store):
    now = int(time.time())
    await store.mark_online("dev_a", "agt:1", "node-1", now=now - 10)
    await store.mark_online("dev_a", "agt:2", "node-2", now=now)
    assert await store.get("dev_a") == Presence("agt:2", "node-2", now, now, now + PRESENCE_TTL_SECONDS)


async def test_renew_extends_the_expiry_and_moves_last_seen_at_most_every_30_seconds(store):
    start = int(time.time()) - 100
    await store.mark_online("dev_a", "agt:1", "node-1", now=start)
    assert await store.renew("dev_a", "agt:1", now=start + 20)
    assert await store.get("dev_a") == Presence("agt:1", "node-1", start, start, start + 20 + PRESENCE_TTL_SECONDS)
    later = start + LAST_SEEN_DEBOUNCE_SECONDS
    assert await store.renew("dev_a", "agt:1", now=later)
    assert await store.get("dev_a") == Presence("agt:1", "node-1", start, later, later + PRESENCE_TTL_SECONDS)


async def test_only_the_holding_connection_renews_or_goes_offline(store):
    now = int(time.time())
    await store.mark_online("dev_a", "agt:old", "node-1", now=now)
    await store.mark_online("dev_a", "agt:new", "node-2", now=now)
    assert not await store.renew("dev_a", "agt:old", now=now + 5)
    assert not await store.mark_offline("dev_a", "agt:old")  # a replaced socket's late teardown
    held = await store.get("dev_a")
    assert held is not None and held.connection_id == "agt:new" and held.expires_at == now + PRESENCE_TTL_SECONDS
    assert await store.mark_offline("dev_a", "agt:new")
    assert await store.get("dev_a") is None
    assert not await store.mark_offline("dev_a", "agt:new")  # already gone
    assert not await store.renew("dev_gone", "agt:x")


async def test_clear_forgets_whoever_holds_the_device(store):
    await store.mark_online("dev_a", "agt:1", "node-1")
    await store.clear("dev_a")
    await store.clear("dev_never")
    assert await store.get("dev_a") is None and not await store.renew("dev_a", "agt:1")


async def test_get_many_returns_only_the_devices_it_finds(store):
    now = int(time.time())
    await store.mark_online("dev_a", "agt:1", "node-1", now=now)
    await store.mark_online("dev_b", "agt:2", "node-1", now=now)
    found = await store.get_many(["dev_b", "dev_none", "dev_a"])
    assert found == {
        "dev_a": Presence("agt:1", "node-1", now, now, now + PRESENCE_TTL_SECONDS),
        "dev_b": Presence("agt:2", "node-1", now, now, now + PRESENCE_TTL_SECONDS),
    }
    assert await store.get_many([]) == {}


async def test_an_expired_record_is_kept_a_while_then_goes(store):
    now = int(time.time())
    await store.mark_online("dev_recent", "agt:1", "node-1", now=now - PRESENCE_TTL_SECONDS - 1)
    recent = await store.get("dev_recent")
    assert recent is not None and not recent.online()  # expired: offline, but still known
    # A process that died stops renewing: past its keep time its record is gone, not merely offline.
    await store.mark_online(
        "dev_dead", "agt:2", "node-dead", now=now - PRESENCE_TTL_SECONDS - PRESENCE_KEEP_SECONDS - 1
    )
    assert await store.get("dev_dead") is None and await store.get_many(["dev_dead"]) == {}
    assert not await store.renew("dev_dead", "agt:2") and not await store.mark_offline("dev_dead", "agt:2")


async def test_concurrent_teardowns_and_a_reconnect_leave_the_newest_connection(store):
    await store.mark_online("dev_a", "agt:0", "node-1")
    outcomes = await asyncio.gather(
        *(store.mark_offline("dev_a", f"agt:{i}") for i in range(10)),
        store.mark_online("dev_a", "agt:new", "node-2"),
        *(store.renew("dev_a", f"agt:{i}") for i in range(1, 10)),
    )
    assert not any(outcomes[1:10]) and not any(outcomes[11:])  # only agt:0 and agt:new ever held the device
    held = await store.get("dev_a")
    assert held is not None and held.connection_id == "agt:new"  # whatever the order, no old teardown removed it


async def test_twenty_racing_offlines_succeed_once(store):
    await store.mark_online("dev_a", "agt:1", "node-1")
    results = await asyncio.gather(*(store.mark_offline("dev_a", "agt:1") for _ in range(20)))
    assert results.count(True) == 1 and await store.get("dev_a") is None
