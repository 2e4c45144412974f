"""The request inspector's records in Redis, shared by every gateway process (tunnels.inspector.RequestLog,
docs/scaling.md). Keys:

    <p>inspect:ids:<route_id>    list of request ids, newest first (LPUSH, trimmed to the record limit)
    <p>inspect:rec:<route_id>    hash request id -> the record's JSON
    <p>inspect:routes            sorted set of route ids scored by their last write (milliseconds)
    <p>inspect:bytes             the stored JSON's total length in bytes, over every route

Adding a record is one Lua script, so it is atomic: push, trim the route to its limit, then while the total is over
the global bound drop the least recently written other route whole (the bounds of tunnels.inspector). Replacing a
record (a buffered webhook delivered or expired) is one script too: only a record still kept is replaced.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings

from gateway_site import redis_state
from tunnels.inspector import MAX_RECORDS, MAX_TOTAL_BYTES

_APPEND = """
local prefix, route_id, request_id = ARGV[1], ARGV[2], ARGV[3]
local ids, recs = prefix .. 'ids:' .. route_id, prefix .. 'rec:' .. route_id
local routes, total_key = prefix .. 'routes', prefix .. 'bytes'
redis.call('LPUSH', ids, request_id)
redis.call('HSET', recs, request_id, ARGV[4])
local delta = string.len(ARGV[4])
while redis.call('LLEN', ids) > tonumber(ARGV[5]) do
  local old = redis.call('RPOP', ids)
  delta = delta - redis.call('HSTRLEN', recs, old)
  redis.call('HDEL', recs, old)
end
redis.call('ZADD', routes, ARGV[7], route_id)
local total = redis.call('INCRBY', total_key, delta)
while total > tonumber(ARGV[6]) do
  local oldest = redis.call('ZRANGE', routes, 0, 0)[1]
  if not oldest or oldest == route_id then break end
  local freed = 0
  for _, value in ipairs(redis.call('HVALS', prefix .. 'rec:' .. oldest)) do freed = freed + string.len(value) end
  redis.call('DEL', prefix .. 'rec:' .. oldest, prefix .. 'ids:' .. oldest)
  redis.call('ZREM', routes, oldest)
  total = redis.call('INCRBY', total_key, -freed)
end
return total
"""


# Replace a record still kept (its id in the route's hash) and adjust the total: ARGV prefix, route, id, JSON.
_UPDATE = """
local recs = ARGV[1] .. 'rec:' .. ARGV[2]
if redis.call('HEXISTS', recs, ARGV[3]) == 0 then return 0 end
local delta = string.len(ARGV[4]) - redis.call('HSTRLEN', recs, ARGV[3])
redis.call('HSET', recs, ARGV[3], ARGV[4])
redis.call('INCRBY', ARGV[1] .. 'bytes', delta)
return 1
"""


class RedisRequestLog:
    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "gw:",
        max_records: int = MAX_RECORDS,
        max_total_bytes: int = MAX_TOTAL_BYTES,
    ) -> None:
        self.url = url or settings.GATEWAY.redis_url
        self.prefix = f"{prefix}inspect:"
        self.max_records = max_records
        self.max_total_bytes = max_total_bytes

    async def append(self, route_id: str, record: dict[str, Any]) -> None:
        text = json.dumps(record, separators=(",", ":"))
        now = int(time.time() * 1000)
        args = (self.prefix, route_id, record["request_id"], text, self.max_records, self.max_total_bytes, now)
        await redis_state.client(self.url).eval(_APPEND, 0, *args)

    async def recent(self, route_id: str, limit: int) -> list[dict[str, Any]]:
        client = redis_state.client(self.url)
        ids = await client.lrange(f"{self.prefix}ids:{route_id}", 0, limit - 1)
        if not ids:
            return []
        found = await client.hmget(f"{self.prefix}rec:{route_id}", ids)
        return [json.loads(text) for text in found if text is not None]

    async def get(self, route_id: str, request_id: str) -> dict[str, Any] | None:
        text = await redis_state.client(self.url).hget(f"{self.prefix}rec:{route_id}", request_id)
        return None if text is None else json.loads(text)

    async def update(self, route_id: str, record: dict[str, Any]) -> bool:
        text = json.dumps(record, separators=(",", ":"))
        args = (self.prefix, route_id, record["request_id"], text)
        return bool(await redis_state.client(self.url).eval(_UPDATE, 0, *args))

    async def count(self, route_id: str) -> int:
        return int(await redis_state.client(self.url).llen(f"{self.prefix}ids:{route_id}"))

    async def stored_bytes(self) -> int:
        return int(await redis_state.client(self.url).get(f"{self.prefix}bytes") or 0)
