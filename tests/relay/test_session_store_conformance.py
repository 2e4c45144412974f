"""relay.session_store.SessionStore: the same behaviour from every implementation, the in-process one and the one on
a real Redis server (tests/redis_server.py). Races run as concurrent coroutines; on Redis they are concurrent
round trips to the server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from relay.session_store import BACKLOG_LIMIT, MemorySessionStore, SessionLimit, SessionStore


@pytest.fixture(params=["memory", "redis"])
def store(request) -> SessionStore:
    if request.param == "memory":
        return MemorySessionStore()
    from relay.redis_session_store import RedisSessionStore

    url = request.getfixturevalue("redis_url")
    return RedisSessionStore(url, prefix=f"test:{uuid.uuid4().hex}:")  # a key space of its own per test


def record(session_id: str, device_id: str = "dev_conform01", **fields) -> dict:
    return {"session_id": session_id, "device_id": device_id, "status": "pending_agent_ack", "seq": 0, **fields}


async def test_create_then_get_and_a_second_create_keeps_the_first(store):
    stored, created = await store.create(record("s1", note="first"))
    assert created and stored == record("s1", note="first")
    again, created_again = await store.create(record("s1", note="second"))
    assert not created_again and again == record("s1", note="first")
    assert await store.get("s1") == record("s1", note="first")
    assert await store.get("nope") is None


async def test_the_per_device_cap_holds_under_concurrent_creates(store):
    results = await asyncio.gather(
        *(store.create(record(f"s{i}"), per_device_limit=5) for i in range(20)), return_exceptions=True
    )
    assert sum(1 for r in results if isinstance(r, tuple) and r[1]) == 5
    assert sum(1 for r in results if isinstance(r, SessionLimit)) == 15
    assert len(await store.for_device("dev_conform01")) == 5
    _, created = await store.create(record("other", device_id="dev_conform02"), per_device_limit=5)
    assert created  # the cap is per device


async def test_update_applies_returns_and_leaves_nothing_behind_when_the_mutation_raises(store):
    await store.create(record("s1"))
    saved, result = await store.update("s1", lambda r: r.update(status="agent_acknowledged") or "done")
    assert result == "done" and saved is not None and saved["status"] == "agent_acknowledged"
    assert await store.update("absent", lambda r: 1) == (None, None)

    def half_then_fail(r: dict) -> None:
        r["status"] = "broken"
        raise ValueError("abort")

    with pytest.raises(ValueError):
        await store.update("s1", half_then_fail)
    current = await store.get("s1")
    assert current is not None and current["status"] == "agent_acknowledged"


async def test_count_follows_creates_and_deletes(store):
    assert await store.count() == 0
    for i in range(3):
        await store.create(record(f"s{i}"))
    await store.create(record("s0"))  # already there: not a second session
    assert await store.count() == 3
    await store.delete("s1")
    await store.delete("absent")
    assert await store.count() == 2


async def test_a_held_record_never_changes_under_its_holder(store):
    held, _ = await store.create(record("s1"))
    await store.update("s1", lambda r: r.update(seq=7))
    assert held["seq"] == 0


async def test_concurrent_updates_are_all_counted(store):
    await store.create(record("s1"))

    def bump(r: dict) -> int:
        r["seq"] += 1
        return int(r["seq"])

    results = await asyncio.gather(*(store.update("s1", bump) for _ in range(50)))
    assert sorted(result for _, result in results) == list(range(1, 51))
    final = await store.get("s1")
    assert final is not None and final["seq"] == 50


async def test_a_seq_commit_race_has_exactly_one_winner(store):
    """docs/protocol/relay.md §4.4: 20 posts of the same seq, exactly one advances it."""
    await store.create(record("s1"))

    def advance(r: dict) -> bool:
        if r["seq"] >= 9:
            return False
        r["seq"] = 9
        return True

    results = await asyncio.gather(*(store.update("s1", advance) for _ in range(20)))
    assert [accepted for _, accepted in results].count(True) == 1


async def test_delete_removes_the_record_its_index_entries_and_its_backlog(store):
    await store.create(record("s1"))
    await store.create(record("s2"))
    await store.append_event("s1", "session.event", "{}")
    deleted = await store.delete("s1")
    assert deleted == record("s1")
    assert await store.get("s1") is None
    assert [r["session_id"] for r in await store.for_device("dev_conform01")] == ["s2"]
    assert [r["session_id"] for r in await store.all()] == ["s2"]
    assert await store.events_after("s1", 0) == [] and await store.backlog_bytes("s1") == 0
    assert await store.delete("s1") is None


async def test_for_device_and_all(store):
    await store.create(record("a1", device_id="dev_a0000001"))
    await store.create(record("a2", device_id="dev_a0000001"))
    await store.create(record("b1", device_id="dev_b0000001"))
    assert sorted(r["session_id"] for r in await store.for_device("dev_a0000001")) == ["a1", "a2"]
    assert sorted(r["session_id"] for r in await store.all()) == ["a1", "a2", "b1"]
    assert await store.for_device("dev_unknown1") == []


async def test_event_ids_increase_across_sessions_and_replay_is_exact(store):
    first = await store.append_event("s1", "session.event", '{"n":1}')
    second = await store.append_event("s2", "session.event", '{"n":2}')
    third = await store.append_event("s1", "session.error", '{"n":"ü"}')
    assert first < second < third
    assert await store.events_after("s1", 0) == [
        (first, "session.event", '{"n":1}'),
        (third, "session.error", '{"n":"ü"}'),
    ]
    assert await store.events_after("s1", first) == [(third, "session.error", '{"n":"ü"}')]
    assert await store.events_after("s1", third) == []


async def test_the_backlog_keeps_the_newest_1000_events(store):
    ids = [await store.append_event("s1", "e", str(i)) for i in range(BACKLOG_LIMIT + 5)]
    kept = await store.events_after("s1", 0)
    assert [event_id for event_id, _, _ in kept] == ids[5:]
    assert await store.backlog_bytes("s1") == sum(1 + len(str(i)) for i in range(5, BACKLOG_LIMIT + 5))


async def test_the_byte_budget_drops_the_oldest_but_keeps_the_newest(store):
    ids = [await store.append_event("s1", "e", "x" * 100, max_bytes=450) for _ in range(10)]
    assert [event_id for event_id, _, _ in await store.events_after("s1", 0)] == ids[-4:]  # 4 × 101 bytes fit
    assert await store.backlog_bytes("s1") == 404
    huge = await store.append_event("s1", "e", "y" * 1000, max_bytes=450)
    assert [event_id for event_id, _, _ in await store.events_after("s1", 0)] == [huge]
    assert await store.backlog_bytes("s1") == 1001


async def test_backlog_count_counts_sessions_with_events(store):
    await store.create(record("s1"))
    await store.create(record("s2"))
    assert await store.backlog_count() == 0
    await store.append_event("s1", "e", "{}")
    assert await store.backlog_count() == 1


async def test_an_idempotency_key_is_claimed_once_until_released(store):
    claims = await asyncio.gather(*(store.reserve_idempotency_key("k1", 60) for _ in range(20)))
    assert claims.count(True) == 1
    assert await store.reserve_idempotency_key("k2", 60)
    await store.release_idempotency_key("k1", 60)
    assert await store.reserve_idempotency_key("k1", 60)


async def test_the_sweep_is_claimed_once_per_period(store):
    claims = await asyncio.gather(*(store.claim_sweep(300) for _ in range(10)))
    assert claims.count(True) == 1
    assert not await store.claim_sweep(300)
