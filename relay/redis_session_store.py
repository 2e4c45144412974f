"""The session store in Redis, for several gateway processes (relay.session_store.SessionStore, docs/scaling.md).

Records are JSON strings; every read-modify-write the contract needs atomic is one Lua script (create with its
per-device cap, delete, the backlog append with its trims) or an optimistic transaction (`update`: WATCH the record,
apply the mutation, write it back, retry if another process wrote first). Keys share one prefix:

    <p>s:<session>      the record (JSON), expiring after SESSION_SAFETY_TTL
    <p>dev:<device>     set of the device's session ids
    <p>idx              hash: session id -> device id (every session)
    <p>ev:<session>     list of backlog events, oldest first: JSON [id, name, data, size]
    <p>evb:<session>    the backlog's byte total
    <p>evid             the event id counter (ids increase across all sessions and processes)
    <p>fl:<session>     set of the node ids with open streams of the session (its followers)
    <p>idem:<key>       a reserved idempotency key
    <p>sweep            the sweep claim

Connections come from gateway_site.redis_state: one client per running loop, every command bounded in time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as redis
from django.conf import settings
from redis.exceptions import WatchError

from gateway_site import redis_state
from relay.session_store import (
    APPENDED,
    BACKLOG_LIMIT,
    REFUSED,
    REPLAYED,
    SESSION_SAFETY_TTL,
    Advance,
    Advanced,
    Event,
    Session,
    SessionLimit,
    event_size,
)

T = TypeVar("T")

_CREATE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
local limit = tonumber(ARGV[2])
if limit >= 0 and redis.call('SCARD', KEYS[2]) >= limit then return {-1, ''} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[5])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
return {1, ARGV[1]}
"""

_DELETE = """
local record = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4])
redis.call('HDEL', KEYS[2], ARGV[1])
if record then
  local device = cjson.decode(record)['device_id']
  redis.call('SREM', ARGV[2] .. device, ARGV[1])
  return record
end
return false
"""

_APPEND = """
local id = redis.call('INCR', KEYS[3])
redis.call('RPUSH', KEYS[1], cjson.encode({id, ARGV[1], ARGV[2], tonumber(ARGV[3])}))
local total = redis.call('INCRBY', KEYS[2], ARGV[3])
local n = redis.call('LLEN', KEYS[1])
local max_bytes = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
while n > limit or (max_bytes >= 0 and total > max_bytes and n > 1) do
  local oldest = cjson.decode(redis.call('LPOP', KEYS[1]))
  total = redis.call('DECRBY', KEYS[2], oldest[4])
  n = n - 1
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return id
"""


# advance_and_append. Lua numbers are doubles and seqs go up to 2**63 - 1, so the seq is compared as a decimal string
# (no leading zeros: the longer is the larger) and written into the record's JSON text in place. The record is always
# written by `_dumps` (compact separators, ints as plain digits), where `"seq_agent_to_client":` right after `{` or `,`
# can only be that key: inside a JSON string a quote is escaped. Anything unexpected answers -2 (the caller refuses).
_ADVANCE_AND_APPEND = """
local raw = redis.call('GET', KEYS[1])
if not raw then return {0} end
local record = cjson.decode(raw)
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  if record[ARGV[2 + 2 * i]] ~= ARGV[3 + 2 * i] then return {0} end
end
local at = 2 + 2 * n
local seq = ARGV[at]
local seq_pattern = '([{,]"seq_agent_to_client":)(%d+)'
local _, current = string.match(raw, seq_pattern)
if not current then return {-2} end
if #seq < #current or (#seq == #current and seq <= current) then return {-1} end
raw = string.gsub(raw, seq_pattern, '%1' .. seq, 1)
raw = string.gsub(raw, '([{,]"updated_at":)(%d+)', '%1' .. ARGV[at + 1], 1)
redis.call('SET', KEYS[1], raw, 'EX', ARGV[at + 7])
local id = redis.call('INCR', KEYS[4])
redis.call('RPUSH', KEYS[2], cjson.encode({id, ARGV[at + 2], ARGV[at + 3], tonumber(ARGV[at + 4])}))
local total = redis.call('INCRBY', KEYS[3], ARGV[at + 4])
local length = redis.call('LLEN', KEYS[2])
local max_bytes = tonumber(ARGV[at + 5])
local limit = tonumber(ARGV[at + 6])
while length > limit or (max_bytes >= 0 and total > max_bytes and length > 1) do
  local oldest = cjson.decode(redis.call('LPOP', KEYS[2]))
  total = redis.call('DECRBY', KEYS[3], oldest[4])
  length = length - 1
end
redis.call('EXPIRE', KEYS[2], ARGV[at + 7])
redis.call('EXPIRE', KEYS[3], ARGV[at + 7])
local out = redis.call('SMEMBERS', KEYS[5])
table.insert(out, 1, id)
table.insert(out, 1, 1)
return out
"""


def _advanced(result: list[Any]) -> Advanced:
    if result[0] == -1:
        return Advanced(REPLAYED)
    if result[0] != 1:
        return Advanced(REFUSED)
    return Advanced(APPENDED, int(result[1]), frozenset(str(node) for node in result[2:]))


def _dumps(record: Session) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


class RedisSessionStore:
    def __init__(self, url: str | None = None, *, prefix: str = "gw:") -> None:
        self.url = url or settings.GATEWAY.redis_url
        self.prefix = prefix

    def client(self) -> redis.Redis:
        """The client of the running event loop (gateway_site.redis_state)."""
        return redis_state.client(self.url)

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}s:{session_id}"

    async def get(self, session_id: str) -> Session | None:
        raw = await self.client().get(self._key(session_id))
        return json.loads(raw) if raw else None

    async def create(self, record: Session, *, per_device_limit: int | None = None) -> tuple[Session, bool]:
        session_id, device_id = record["session_id"], record["device_id"]
        keys = [self._key(session_id), f"{self.prefix}dev:{device_id}", f"{self.prefix}idx"]
        limit = -1 if per_device_limit is None else per_device_limit
        args = [_dumps(record), limit, session_id, device_id, SESSION_SAFETY_TTL]
        created, raw = await self.client().eval(_CREATE, len(keys), *keys, *args)
        if created == -1:
            raise SessionLimit(device_id)
        return json.loads(raw), created == 1

    async def update(self, session_id: str, mutate: Callable[[Session], T]) -> tuple[Session | None, T | None]:
        key = self._key(session_id)
        async with self.client().pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                        return None, None
                    record = json.loads(raw)
                    result = mutate(record)  # raising leaves the pipeline (and the record) untouched
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                    pipe.set(key, _dumps(record), ex=SESSION_SAFETY_TTL)
                    await pipe.execute()
                    return record, result
                except WatchError:
                    continue  # another writer came first: read again

    async def delete(self, session_id: str) -> Session | None:
        p = self.prefix
        keys = [self._key(session_id), f"{p}idx", f"{p}ev:{session_id}", f"{p}evb:{session_id}"]
        raw = await self.client().eval(_DELETE, len(keys), *keys, session_id, f"{p}dev:")
        return json.loads(raw) if raw else None

    async def _records(self, ids: list[str]) -> list[Session]:
        if not ids:
            return []
        raws = await self.client().mget([self._key(sid) for sid in ids])
        return [json.loads(raw) for raw in raws if raw]

    async def for_device(self, device_id: str) -> list[Session]:
        ids = await self.client().smembers(f"{self.prefix}dev:{device_id}")
        return await self._records(sorted(str(i) for i in ids))

    async def all(self) -> list[Session]:
        ids = await self.client().hkeys(f"{self.prefix}idx")
        return await self._records([str(i) for i in ids])

    async def count(self) -> int:
        return int(await self.client().hlen(f"{self.prefix}idx"))

    async def append_event(self, session_id: str, name: str, data: str, *, max_bytes: int | None = None) -> int:
        p = self.prefix
        keys = [f"{p}ev:{session_id}", f"{p}evb:{session_id}", f"{p}evid"]
        limit = -1 if max_bytes is None else max_bytes
        args: list[str | int] = [name, data, event_size(name, data), limit, BACKLOG_LIMIT, SESSION_SAFETY_TTL]
        return int(await self.client().eval(_APPEND, len(keys), *keys, *args))

    async def advance_and_append(self, frames: Sequence[Advance]) -> list[Advanced]:
        if not frames:
            return []
        if len(frames) == 1:
            keys, args = self._advance_args(frames[0])
            return [_advanced(await self.client().eval(_ADVANCE_AND_APPEND, len(keys), *keys, *args))]
        # One round trip for the batch; Redis runs the scripts of one connection in the order they were sent.
        async with self.client().pipeline(transaction=False) as pipe:
            for frame in frames:
                keys, args = self._advance_args(frame)
                pipe.eval(_ADVANCE_AND_APPEND, len(keys), *keys, *args)
            return [_advanced(result) for result in await pipe.execute()]

    def _advance_args(self, frame: Advance) -> tuple[list[str], list[str | int]]:
        p, session_id = self.prefix, frame.session_id
        keys = [self._key(session_id), f"{p}ev:{session_id}", f"{p}evb:{session_id}", f"{p}evid", f"{p}fl:{session_id}"]
        args: list[str | int] = [len(frame.expect)]
        for field, value in frame.expect.items():
            args += [field, value]
        limit = -1 if frame.max_bytes is None else frame.max_bytes
        size = event_size(frame.name, frame.data)
        args += [
            str(int(frame.seq)),
            int(frame.now),
            frame.name,
            frame.data,
            size,
            limit,
            BACKLOG_LIMIT,
            SESSION_SAFETY_TTL,
        ]
        return keys, args

    async def follow(self, session_id: str, node_id: str) -> None:
        key = f"{self.prefix}fl:{session_id}"
        async with self.client().pipeline(transaction=True) as pipe:
            pipe.sadd(key, node_id)
            pipe.expire(key, SESSION_SAFETY_TTL)  # only a crashed process's entry outlives its streams
            await pipe.execute()

    async def unfollow(self, session_id: str, node_id: str) -> None:
        await self.client().srem(f"{self.prefix}fl:{session_id}", node_id)

    async def followers(self, session_id: str) -> frozenset[str]:
        return frozenset(str(node) for node in await self.client().smembers(f"{self.prefix}fl:{session_id}"))

    async def events_after(self, session_id: str, after: int) -> list[Event]:
        entries = await self.client().lrange(f"{self.prefix}ev:{session_id}", 0, -1)
        out: list[Event] = []
        for raw in entries:
            event_id, name, data, _ = json.loads(raw)
            if event_id > after:
                out.append((int(event_id), name, data))
        return out

    async def backlog_bytes(self, session_id: str) -> int:
        return int(await self.client().get(f"{self.prefix}evb:{session_id}") or 0)

    async def backlog_count(self) -> int:
        ids = await self.client().hkeys(f"{self.prefix}idx")
        if not ids:
            return 0
        async with self.client().pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.llen(f"{self.prefix}ev:{sid!s}")
            lengths: list[Any] = await pipe.execute()
        return sum(1 for n in lengths if n)

    async def reserve_idempotency_key(self, key: str, ttl: int) -> bool:
        return bool(await self.client().set(f"{self.prefix}idem:{key}", "1", nx=True, ex=ttl))

    async def release_idempotency_key(self, key: str, ttl: int) -> None:
        await self.client().delete(f"{self.prefix}idem:{key}")

    async def claim_sweep(self, period: int) -> bool:
        return bool(await self.client().set(f"{self.prefix}sweep", "1", nx=True, ex=period))
