"""tunnels.inspector.RequestLog: the same bounds and order from the in-process store and the one on a real Redis
server (tests/redis_server.py)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from tunnels.inspector import MemoryRequestLog, new_request_id

MAX_RECORDS = 5
MAX_TOTAL = 4000


@pytest.fixture(params=["memory", "redis"])
def log(request):
    if request.param == "memory":
        return MemoryRequestLog(max_records=MAX_RECORDS, max_total_bytes=MAX_TOTAL)
    from tunnels.inspector_redis import RedisRequestLog

    url = request.getfixturevalue("redis_url")
    return RedisRequestLog(url, prefix=f"test:{uuid.uuid4().hex}:", max_records=MAX_RECORDS, max_total_bytes=MAX_TOTAL)


def record(n: int, pad: int = 0) -> dict:
    return {"request_id": new_request_id(), "n": n, "pad": "x" * pad}


def size(value: dict) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


async def test_newest_first_and_the_oldest_evicted(log):
    added = [record(n) for n in range(MAX_RECORDS + 1)]
    for value in added:
        await log.append("rt_a", value)
    assert await log.recent("rt_a", 100) == list(reversed(added[1:]))
    assert await log.recent("rt_a", 2) == [added[-1], added[-2]]
    assert await log.get("rt_a", added[0]["request_id"]) is None  # evicted
    assert await log.get("rt_a", added[3]["request_id"]) == added[3]
    assert await log.get("rt_b", added[3]["request_id"]) is None  # records belong to their route
    assert await log.recent("rt_none", 10) == []
    assert await log.stored_bytes() == sum(size(v) for v in added[1:])


async def test_the_global_bound_drops_the_least_recently_written_route(log):
    first, second, third = record(1, 1500), record(2, 1500), record(3, 1500)
    await log.append("rt_old", first)
    await log.append("rt_mid", second)
    await log.append("rt_old", record(4))  # rt_old is now the most recently written
    await log.append("rt_new", third)  # over 4000 bytes: rt_mid goes whole
    assert await log.recent("rt_mid", 10) == []
    assert [r["n"] for r in await log.recent("rt_old", 10)] == [4, 1]
    assert await log.recent("rt_new", 10) == [third]
    assert await log.stored_bytes() <= MAX_TOTAL


async def test_concurrent_appends_are_all_counted(log):
    added = [record(n) for n in range(MAX_RECORDS)]
    await asyncio.gather(*(log.append("rt_c", value) for value in added))
    assert sorted(r["n"] for r in await log.recent("rt_c", 100)) == list(range(MAX_RECORDS))
    assert await log.stored_bytes() == sum(size(v) for v in added)


async def test_the_default_bound_keeps_the_last_hundred():
    log = MemoryRequestLog()
    added = [record(n) for n in range(101)]
    for value in added:
        await log.append("rt_d", value)
    kept = await log.recent("rt_d", 1000)
    assert len(kept) == 100 and kept[0] == added[-1] and kept[-1] == added[1]


async def test_a_record_is_updated_where_it_stands(log):
    first, second = record(1), record(2)
    await log.append("rt_u", first)
    await log.append("rt_u", second)
    changed = {**first, "pad": "y" * 50}
    assert await log.update("rt_u", changed)
    assert await log.recent("rt_u", 10) == [second, changed]
    assert await log.stored_bytes() == size(second) + size(changed)
    assert not await log.update("rt_u", record(3))  # not kept: nothing is added
    assert not await log.update("rt_other", changed)
    assert await log.count("rt_u") == 2 and await log.count("rt_none") == 0
