"""relay.session_store.SessionStore: the same behaviour from every implementation, the in-process one and the one on
a real Redis server (tests/redis_server.py). Races run as concurrent coroutines; on Redis they are concurrent
round trips to the server."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from relay.session_store import BACKLOG_LIMIT, Advance, MemorySessionStore, SessionLimit, SessionStore


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


def live(session_id: str, **fields) -> dict:
    """A session record as the relay writes it once the agent acknowledged (the fields advance_and_append reads)."""
    base = {
        "session_id": session_id,
        "device_id": "dev_conform01",
        "handshake_id": "hs_1",
        "conversation_id": "conv_1",
        "status": "agent_acknowledged",
        "last_error": "",
        "seq_agent_to_client": 0,
        "updated_at": 1_700_000_000,
        "note": 'a value with "quotes", {"seq_agent_to_client":99} and ü',
    }
    return {**base, **fields}


EXPECT = {"device_id": "dev_conform01", "conversation_id": "conv_1", "status": "agent_acknowledged"}


def frame(session_id: str, seq: int, data: str = "{}", **kwargs) -> Advance:
    options = {"expect": EXPECT, "now": 1_800_000_000, "name": "session.event", "data": data, **kwargs}
    return Advance(session_id=session_id, seq=seq, **options)


async def advance(store, session_id: str, seq: int, data: str = "{}", **kwargs):
    [result] = await store.advance_and_append([frame(session_id, seq, data, **kwargs)])
    return result


async def test_advance_and_append_advances_the_seq_stores_the_event_and_changes_nothing_else(store):
    await store.create(live("s1"))
    result = await advance(store, "s1", 3, '{"n":3}')
    assert result.outcome == "appended" and result.followers == frozenset()
    assert await store.events_after("s1", 0) == [(result.event_id, "session.event", '{"n":3}')]
    assert await store.get("s1") == live("s1", seq_agent_to_client=3, updated_at=1_800_000_000)
    later = await store.append_event("s1", "session.event", "{}")
    assert later > result.event_id  # one id sequence with append_event


async def test_advance_and_append_refuses_a_seq_not_above_the_last_one(store):
    await store.create(live("s1"))
    assert (await advance(store, "s1", 5)).outcome == "appended"
    for seq in (5, 4, 1):
        assert (await advance(store, "s1", seq)).outcome == "replayed"
    assert (await advance(store, "s1", 10)).outcome == "appended"  # gaps are fine
    assert (await advance(store, "s1", 9)).outcome == "replayed"
    assert len(await store.events_after("s1", 0)) == 2
    assert (await store.get("s1"))["seq_agent_to_client"] == 10


async def test_advance_and_append_compares_seqs_exactly_up_to_2_63(store):
    await store.create(live("s1"))
    top = 2**63 - 1
    assert (await advance(store, "s1", 2**53)).outcome == "appended"
    assert (await advance(store, "s1", 2**53 + 1)).outcome == "appended"  # one above, beyond a double's precision
    assert (await advance(store, "s1", 2**53 + 1)).outcome == "replayed"
    assert (await advance(store, "s1", 99)).outcome == "replayed"  # fewer digits
    assert (await advance(store, "s1", top)).outcome == "appended"
    assert (await advance(store, "s1", top)).outcome == "replayed"
    assert (await store.get("s1"))["seq_agent_to_client"] == top


async def test_advance_and_append_refuses_an_absent_or_unexpected_session(store):
    assert (await advance(store, "absent", 1)).outcome == "refused"
    await store.create(live("pending", status="pending_agent_ack"))
    await store.create(live("other", device_id="dev_conform02"))
    await store.create(live("moved", conversation_id="conv_2"))
    await store.create(record("bare"))  # no seq field: nothing to advance
    for session_id in ("pending", "other", "moved"):
        assert (await advance(store, session_id, 1)).outcome == "refused"
    bare = {"device_id": "dev_conform01", "status": "pending_agent_ack"}
    assert (await advance(store, "bare", 1, expect=bare)).outcome == "refused"
    with_handshake = {**EXPECT, "handshake_id": "hs_other"}
    await store.create(live("s1"))
    assert (await advance(store, "s1", 1, expect=with_handshake)).outcome == "refused"
    assert (await advance(store, "s1", 1, expect={**EXPECT, "handshake_id": "hs_1"})).outcome == "appended"
    for session_id in ("absent", "pending", "other", "moved", "bare"):
        assert await store.events_after(session_id, 0) == []
    assert (await store.get("pending"))["seq_agent_to_client"] == 0


async def test_concurrent_frames_with_one_seq_append_exactly_once(store):
    await store.create(live("s1"))
    results = await asyncio.gather(*(advance(store, "s1", 7, f'{{"copy":{i}}}') for i in range(20)))
    assert [r.outcome for r in results].count("appended") == 1
    assert [r.outcome for r in results].count("replayed") == 19
    assert len(await store.events_after("s1", 0)) == 1


async def test_advance_and_append_keeps_the_backlog_bounds(store):
    await store.create(live("s1"))
    ids = [(await advance(store, "s1", n, "x" * 100, max_bytes=450)).event_id for n in range(1, 11)]
    assert [event_id for event_id, _, _ in await store.events_after("s1", 0)] == ids[-3:]  # 3 × 113 bytes fit
    assert await store.backlog_bytes("s1") == 3 * (len("session.event") + 100)


async def test_followers_are_recorded_returned_with_the_event_and_outlive_the_session(store):
    await store.create(live("s1"))
    assert await store.followers("s1") == frozenset()
    await asyncio.gather(store.follow("s1", "node-a"), store.follow("s1", "node-b"), store.follow("s1", "node-a"))
    assert await store.followers("s1") == {"node-a", "node-b"}
    assert (await advance(store, "s1", 1)).followers == {"node-a", "node-b"}
    await store.unfollow("s1", "node-a")
    await store.unfollow("s1", "node-unknown")
    assert (await advance(store, "s1", 2)).followers == {"node-b"}
    await store.delete("s1")
    assert await store.followers("s1") == {"node-b"}  # its streams still have to be ended
    await store.unfollow("s1", "node-b")
    assert await store.followers("s1") == frozenset()
    assert await store.followers("s2") == frozenset()


async def test_a_batch_is_applied_in_order_one_frame_after_the_other(store):
    await store.create(live("s1"))
    await store.create(live("s2"))
    batch = [frame("s1", 1, "a"), frame("s1", 1, "b"), frame("s2", 1, "c"), frame("gone", 1), frame("s1", 2, "d")]
    results = await store.advance_and_append(batch)
    assert [r.outcome for r in results] == ["appended", "replayed", "appended", "refused", "appended"]
    ids = [r.event_id for r in results if r.outcome == "appended"]
    assert ids == sorted(ids)
    assert [data for _, _, data in await store.events_after("s1", 0)] == ["a", "d"]
    assert [data for _, _, data in await store.events_after("s2", 0)] == ["c"]
    assert await store.advance_and_append([]) == []
