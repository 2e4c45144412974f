"""The key/value stores and the leases in Redis, for several gateway processes (gateway_site.kvstore.KeyValueStore,
gateway_site.leases.Leases, docs/scaling.md).

Keys share one prefix:

    <p>kv:<store>:<key>   a key/value entry: a JSON value, or a counter, expiring with its store's lifetime
    <p>lease:<key>        sorted set of lease ids scored by their expiry (milliseconds of the server's clock)

Every operation is a single command or one Lua script, so it is atomic: a claim is `SET NX PX`, a counter is INCR
with its expiry set in the same script, and a lease script first drops the lapsed members, then counts. Leases use
the Redis server's clock (`TIME`), so processes whose clocks disagree still agree on when a lease lapses.

Connections come from gateway_site.redis_state: one client per running loop, every command bounded in time.
"""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as redis
from django.conf import settings

from gateway_site import redis_state

_INCR = """
local count = redis.call('INCR', KEYS[1])
if count == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count
"""

# Shared by the lease scripts: the server's time in milliseconds, and the key's lapsed members dropped.
_LEASE_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
"""

# The whole set expires with its last lease, so a key nobody renews leaves nothing behind.
_LEASE_HOLD = """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
"""

_ACQUIRE = (
    _LEASE_PRELUDE
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
"""
    + _LEASE_HOLD
)

_RENEW = (
    _LEASE_PRELUDE
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
"""
    + _LEASE_HOLD
)

_HOLDERS = _LEASE_PRELUDE + "return redis.call('ZRANGE', KEYS[1], 0, -1)\n"


def _milliseconds(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisKeyValueStore:
    """One named store: values are JSON text, every entry lives `ttl` seconds (`max_entries` is for the in-process
    store; here the lifetime bounds what is kept)."""

    def __init__(
        self, name: str, *, ttl: float, max_entries: int = 0, url: str | None = None, prefix: str = "gw:"
    ) -> None:
        self.name = name
        self.ttl = ttl
        self.url = url or settings.GATEWAY.redis_url
        self.prefix = f"{prefix}kv:{name}:"

    def client(self) -> redis.Redis:
        return redis_state.client(self.url)

    async def get(self, key: str) -> Any:
        raw = await self.client().get(self.prefix + key)
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: Any) -> None:
        await self.client().set(self.prefix + key, json.dumps(value), px=_milliseconds(self.ttl))

    async def add(self, key: str, value: Any = True) -> bool:
        return bool(await self.client().set(self.prefix + key, json.dumps(value), nx=True, px=_milliseconds(self.ttl)))

    async def incr(self, key: str) -> int:
        return int(await self.client().eval(_INCR, 1, self.prefix + key, _milliseconds(self.ttl)))

    async def delete(self, key: str) -> None:
        await self.client().delete(self.prefix + key)


class RedisLeases:
    def __init__(self, url: str | None = None, *, prefix: str = "gw:") -> None:
        self.url = url or settings.GATEWAY.redis_url
        self.prefix = f"{prefix}lease:"

    def client(self) -> redis.Redis:
        return redis_state.client(self.url)

    async def acquire(self, key: str, limit: int, lease_id: str, ttl: float) -> bool:
        return bool(await self.client().eval(_ACQUIRE, 1, self.prefix + key, lease_id, _milliseconds(ttl), limit))

    async def renew(self, key: str, lease_id: str, ttl: float) -> bool:
        return bool(await self.client().eval(_RENEW, 1, self.prefix + key, lease_id, _milliseconds(ttl)))

    async def release(self, key: str, lease_id: str) -> None:
        await self.client().zrem(self.prefix + key, lease_id)

    async def holders(self, key: str) -> list[str]:
        found = await self.client().eval(_HOLDERS, 1, self.prefix + key)
        return sorted(str(lease_id) for lease_id in found)
