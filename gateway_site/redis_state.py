"""Connections to the Redis server that holds the shared state when `STATE_BACKEND=redis` (docs/scaling.md).

A redis-py asyncio client belongs to the event loop it was first used on, so there is one client per URL and running
loop (Daphne serves on one loop; sync views reach async code through asgiref's loop). Every command is bounded in
time: a Redis server that stops answering turns into `redis.exceptions.ConnectionError` / `TimeoutError` within
`COMMAND_TIMEOUT_SECONDS`, never a hang, and the edges answer `503 {"error":"state_unavailable"}` for it.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis.asyncio as redis

CONNECT_TIMEOUT_SECONDS = 2.0
COMMAND_TIMEOUT_SECONDS = 5.0
# channels_redis blocks up to 5 s in BZPOPMIN while a consumer waits; its reads need a longer timeout than that.
LAYER_READ_TIMEOUT_SECONDS = 10.0

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, redis.Redis]] = weakref.WeakKeyDictionary()


def client(url: str) -> redis.Redis:
    """The client for `url` on the running event loop (created at first use, responses decoded as UTF-8)."""
    import redis.asyncio as redis

    loop = asyncio.get_running_loop()
    by_url = _clients.setdefault(loop, {})
    found = by_url.get(url)
    if found is None:
        found = by_url[url] = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
            socket_timeout=COMMAND_TIMEOUT_SECONDS,
            health_check_interval=15,
        )
    return found


def channel_layer(url: str) -> dict[str, Any]:
    """The CHANNEL_LAYERS entry of the Redis mode: channels_redis on `url`.

    redis-py 8 reads with a 5 s socket timeout by default, exactly as long as channels_redis blocks in BZPOPMIN, so
    without a longer one every consumer that stays idle for 5 s fails (docs/platform-notes.md). Membership must not
    expire under a long-lived connection (streams and sockets leave their groups when they close).
    """
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": url,
                    "socket_timeout": LAYER_READ_TIMEOUT_SECONDS,
                    "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
                }
            ],
            "prefix": "gw:layer:",
            "capacity": 1000,
            "expiry": 60,
            "group_expiry": 10 * 365 * 86400,
        },
    }
