"""The offline buffer in Redis, shared by every gateway process (tunnels.buffer.BufferStore, docs/scaling.md). Keys:

    <p>buffer:q:<route_id>       list of `<record id> <expires_at> <body size> <stored size>`, oldest first
    <p>buffer:e:<route_id>       hash record id -> the entry's frame (JSON)
    <p>buffer:bodies             hash route id -> the route's body bytes
    <p>buffer:routes             sorted set of route ids scored by their latest entry's expiry (unix seconds)
    <p>buffer:bytes              the stored frames' total length in bytes, over every route
    <p>buffer:lock:<route_id>    the drain lock: a token, with a time to live

Storing, taking the head and expiring are each one Lua script, so they are atomic across processes; the sweep of
routes whose every entry expired and the expiry of the route's own head run inside the storing script.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings

from gateway_site import redis_state
from tunnels.buffer import MAX_ROUTE_BODY_BYTES, MAX_TOTAL_BYTES, SWEEP_LIMIT, Entry, Pushed

# Shared by the scripts: `take_head(route)` removes the route's oldest entry and returns its meta line.
_PRELUDE = """
local prefix = ARGV[1]
local bodies, routes, total = prefix .. 'bodies', prefix .. 'routes', prefix .. 'bytes'
local function field(meta, n)
  local i = 0
  for part in string.gmatch(meta, '%S+') do
    i = i + 1
    if i == n then return part end
  end
end
local function take_head(route)
  local meta = redis.call('LPOP', prefix .. 'q:' .. route)
  if not meta then return nil end
  local id = field(meta, 1)
  redis.call('HDEL', prefix .. 'e:' .. route, id)
  redis.call('INCRBY', total, -tonumber(field(meta, 4)))
  if redis.call('HINCRBY', bodies, route, -tonumber(field(meta, 3))) <= 0
     and redis.call('LLEN', prefix .. 'q:' .. route) == 0 then
    redis.call('HDEL', bodies, route)
    redis.call('ZREM', routes, route)
  end
  return id
end
local function expire(route, now, out, with_route)
  while true do
    local meta = redis.call('LINDEX', prefix .. 'q:' .. route, 0)
    if not meta or tonumber(field(meta, 2)) > now then break end
    local id = take_head(route)
    if with_route then table.insert(out, route) end
    table.insert(out, id)
  end
  return out
end
"""

# ARGV: prefix, route, meta, id, frame, body size, stored size, expires_at, max_requests, max route bodies,
# max total, now, sweep limit. Returns {stored 0|1, route, id, route, id, …} of the entries that expired.
_PUSH = (
    _PRELUDE
    + """
local route, now = ARGV[2], tonumber(ARGV[12])
local out = {0}
for _, dead in ipairs(redis.call('ZRANGEBYSCORE', routes, '-inf', now, 'LIMIT', 0, tonumber(ARGV[13]))) do
  while redis.call('LLEN', prefix .. 'q:' .. dead) > 0 do
    table.insert(out, dead)
    table.insert(out, take_head(dead))
  end
  redis.call('ZREM', routes, dead)
  redis.call('HDEL', bodies, dead)
end
expire(route, now, out, true)
local queue = prefix .. 'q:' .. route
local body, stored = tonumber(ARGV[6]), tonumber(ARGV[7])
if redis.call('LLEN', queue) >= tonumber(ARGV[9])
   or tonumber(redis.call('HGET', bodies, route) or '0') + body > tonumber(ARGV[10])
   or tonumber(redis.call('GET', total) or '0') + stored > tonumber(ARGV[11]) then
  return out
end
redis.call('RPUSH', queue, ARGV[3])
redis.call('HSET', prefix .. 'e:' .. route, ARGV[4], ARGV[5])
redis.call('HINCRBY', bodies, route, body)
redis.call('INCRBY', total, stored)
local latest = redis.call('ZSCORE', routes, route)
if not latest or tonumber(latest) < tonumber(ARGV[8]) then redis.call('ZADD', routes, ARGV[8], route) end
out[1] = 1
return out
"""
)

_REMOVE = (
    _PRELUDE
    + """
local meta = redis.call('LINDEX', prefix .. 'q:' .. ARGV[2], 0)
if not meta or field(meta, 1) ~= ARGV[3] then return 0 end
take_head(ARGV[2])
return 1
"""
)

_EXPIRE = _PRELUDE + "return expire(ARGV[2], tonumber(ARGV[3]), {}, false)\n"

_DROP = (
    _PRELUDE
    + """
local out = {}
while redis.call('LLEN', prefix .. 'q:' .. ARGV[2]) > 0 do table.insert(out, take_head(ARGV[2])) end
return out
"""
)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisBuffer:
    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "gw:",
        max_route_body_bytes: int = MAX_ROUTE_BODY_BYTES,
        max_total_bytes: int = MAX_TOTAL_BYTES,
    ) -> None:
        self.url = url or settings.GATEWAY.redis_url
        self.prefix = f"{prefix}buffer:"
        self.max_route_body_bytes = max_route_body_bytes
        self.max_total_bytes = max_total_bytes

    def _client(self) -> Any:
        return redis_state.client(self.url)

    async def push(self, route_id: str, entry: Entry, *, max_requests: int, now: float) -> Pushed:
        meta = f"{entry.request_id} {entry.expires_at!r} {entry.body_size} {entry.stored_size}"
        args = (
            *(self.prefix, route_id, meta, entry.request_id, entry.text, entry.body_size, entry.stored_size),
            *(repr(entry.expires_at), max_requests, self.max_route_body_bytes, self.max_total_bytes, repr(now)),
            SWEEP_LIMIT,
        )
        result = await self._client().eval(_PUSH, 0, *args)
        pairs = result[1:]
        expired = [(str(pairs[i]), str(pairs[i + 1])) for i in range(0, len(pairs), 2)]
        return Pushed(bool(result[0]), expired)

    async def head(self, route_id: str) -> Entry | None:
        client = self._client()
        meta = await client.lindex(f"{self.prefix}q:{route_id}", 0)
        if meta is None:
            return None
        request_id, expires_at, body_size, _ = str(meta).split(" ")
        text = await client.hget(f"{self.prefix}e:{route_id}", request_id)
        if text is None:  # taken meanwhile
            return None
        return Entry(request_id, float(expires_at), int(body_size), json.loads(text))

    async def remove(self, route_id: str, request_id: str) -> bool:
        return bool(await self._client().eval(_REMOVE, 0, self.prefix, route_id, request_id))

    async def expire(self, route_id: str, now: float) -> list[str]:
        return [str(rid) for rid in await self._client().eval(_EXPIRE, 0, self.prefix, route_id, repr(now))]

    async def count(self, route_id: str) -> int:
        return int(await self._client().llen(f"{self.prefix}q:{route_id}"))

    async def drop_route(self, route_id: str) -> list[str]:
        return [str(rid) for rid in await self._client().eval(_DROP, 0, self.prefix, route_id)]

    async def stored_bytes(self) -> int:
        return int(await self._client().get(f"{self.prefix}bytes") or 0)

    async def lock(self, route_id: str, token: str, seconds: float) -> bool:
        return bool(await self._client().set(f"{self.prefix}lock:{route_id}", token, px=_ms(seconds), nx=True))

    async def renew(self, route_id: str, token: str, seconds: float) -> bool:
        return bool(await self._client().eval(_RENEW, 1, f"{self.prefix}lock:{route_id}", token, _ms(seconds)))

    async def unlock(self, route_id: str, token: str) -> None:
        await self._client().eval(_UNLOCK, 1, f"{self.prefix}lock:{route_id}", token)
