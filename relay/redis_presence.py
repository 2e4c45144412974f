"""Device presence in Redis, for several gateway processes (relay.stores.PresenceStore, docs/scaling.md).

One hash per device, `<p>presence:<device_id>`, with the fields of relay.stores.Presence. The key expires
PRESENCE_KEEP_SECONDS after the record does, so the records of a process that died (nobody renews them) go offline
at their expiry and then leave Redis. Replacing a record is one transaction; renewing and going offline compare the
connection id and write in one Lua script, so a replaced socket's late teardown cannot touch the new record.

Connections come from gateway_site.redis_state: one client per running loop, every command bounded in time.
"""

from __future__ import annotations

import time

import redis.asyncio as redis
from django.conf import settings

from gateway_site import redis_state
from relay.stores import LAST_SEEN_DEBOUNCE_SECONDS, PRESENCE_KEEP_SECONDS, PRESENCE_TTL_SECONDS, Presence, new_record

_RENEW = """
local held = redis.call('HMGET', KEYS[1], 'connection_id', 'last_seen_at')
if held[1] ~= ARGV[1] then return 0 end
local now = tonumber(ARGV[2])
if now - tonumber(held[2]) >= tonumber(ARGV[3]) then redis.call('HSET', KEYS[1], 'last_seen_at', now) end
local expires = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'expires_at', expires)
redis.call('EXPIREAT', KEYS[1], expires + tonumber(ARGV[5]))
return 1
"""

_MARK_OFFLINE = """
if redis.call('HGET', KEYS[1], 'connection_id') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


def _record(fields: dict[str, str]) -> Presence | None:
    if not fields.get("connection_id"):
        return None
    return Presence(
        connection_id=fields["connection_id"],
        node_id=fields.get("node_id", ""),
        connected_at=int(fields.get("connected_at", 0)),
        last_seen_at=int(fields.get("last_seen_at", 0)),
        expires_at=int(fields.get("expires_at", 0)),
    )


class RedisPresenceStore:
    def __init__(self, url: str | None = None, *, prefix: str = "gw:") -> None:
        self.url = url or settings.GATEWAY.redis_url
        self.prefix = f"{prefix}presence:"

    def client(self) -> redis.Redis:
        return redis_state.client(self.url)

    async def mark_online(self, device_id: str, connection_id: str, node_id: str, now: int | None = None) -> Presence:
        record = new_record(connection_id, node_id, int(time.time()) if now is None else now)
        key = self.prefix + device_id
        async with self.client().pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(
                key,
                mapping={
                    "connection_id": record.connection_id,
                    "node_id": record.node_id,
                    "connected_at": record.connected_at,
                    "last_seen_at": record.last_seen_at,
                    "expires_at": record.expires_at,
                },
            )
            pipe.expireat(key, record.expires_at + PRESENCE_KEEP_SECONDS)
            await pipe.execute()
        return record

    async def renew(self, device_id: str, connection_id: str, now: int | None = None) -> bool:
        current = int(time.time()) if now is None else now
        args: list[str | int] = [
            connection_id,
            current,
            LAST_SEEN_DEBOUNCE_SECONDS,
            PRESENCE_TTL_SECONDS,
            PRESENCE_KEEP_SECONDS,
        ]
        return bool(await self.client().eval(_RENEW, 1, self.prefix + device_id, *args))

    async def mark_offline(self, device_id: str, connection_id: str) -> bool:
        return bool(await self.client().eval(_MARK_OFFLINE, 1, self.prefix + device_id, connection_id))

    async def clear(self, device_id: str) -> None:
        await self.client().delete(self.prefix + device_id)

    async def get(self, device_id: str) -> Presence | None:
        fields: dict[str, str] = await self.client().hgetall(self.prefix + device_id)  # type: ignore[assignment]  # decoded responses
        return _record(fields)

    async def get_many(self, device_ids: list[str]) -> dict[str, Presence]:
        if not device_ids:
            return {}
        async with self.client().pipeline(transaction=False) as pipe:
            for device_id in device_ids:
                pipe.hgetall(self.prefix + device_id)
            found: list[dict[str, str]] = await pipe.execute()
        records = {device_id: _record(fields) for device_id, fields in zip(device_ids, found, strict=True)}
        return {device_id: record for device_id, record in records.items() if record is not None}
