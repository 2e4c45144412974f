"""Connections to the Redis server that holds the shared state when `STATE_BACKEND=redis` (docs/scaling.md).

A redis-py asyncio client belongs to the event loop it was first used on, so there is one client per URL and running
loop (Daphne serves on one loop; sync views reach async code through asgiref's loop). Every command is bounded in
time: a Redis server that stops answering turns into `redis.exceptions.ConnectionError` / `TimeoutError` within
`COMMAND_TIMEOUT_SECONDS` (a refused connection at once), never a hang, and the edges answer
`503 {"error":"state_unavailable"}` for it (gateway_site.outage). A command that fails on a broken connection
(Redis restarted) is sent once more on a fresh one; a timeout is not repeated, so one command waits at most
`2 * CONNECT_TIMEOUT_SECONDS` or `COMMAND_TIMEOUT_SECONDS`, whichever is longer.

The channels_redis layer gets the same connect timeout (`layer_host`); its socket timeout sits above the layer's
5 s blocking receive, and a failure there is never repeated: the socket or stream whose receive failed ends and
its client reconnects (gateway_site.contained, gateway_site.sse), joining its groups again.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis.asyncio as redis

CONNECT_TIMEOUT_SECONDS = 2.0
COMMAND_TIMEOUT_SECONDS = 5.0
# channels_redis waits for channel messages with a blocking BZPOPMIN of 5 s; the socket timeout must exceed it.
LAYER_SOCKET_TIMEOUT_SECONDS = 5.0 + COMMAND_TIMEOUT_SECONDS
READY_PING_TIMEOUT_SECONDS = 1.0

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, redis.Redis]] = weakref.WeakKeyDictionary()


def client(url: str) -> redis.Redis:
    """The client for `url` on the running event loop (created at first use, responses decoded as UTF-8)."""
    import redis.asyncio as redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError

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
            retry=Retry(NoBackoff(), 1, supported_errors=(ConnectionError,)),
        )
    return found


async def ping(url: str, timeout: float = READY_PING_TIMEOUT_SECONDS) -> None:
    """PING Redis; raises redis-py's ConnectionError or TimeoutError unless it answers within `timeout` seconds."""
    from redis.exceptions import TimeoutError as RedisTimeout

    try:
        await asyncio.wait_for(client(url).ping(), timeout)
    except TimeoutError:  # asyncio's: the server accepted the connection but did not answer in time
        raise RedisTimeout(f"no answer to PING within {timeout}s") from None


def layer_host(url: str) -> dict[str, Any]:
    """The channels_redis host entry for `url`, with bounded connects and reads (see the module docstring)."""
    return {
        "address": url,
        "socket_connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": LAYER_SOCKET_TIMEOUT_SECONDS,
    }


def channel_layer(url: str) -> dict[str, Any]:
    """The CHANNEL_LAYERS entry of the Redis mode: channels_redis on `url`.

    redis-py 8 reads with a 5 s socket timeout by default, exactly as long as channels_redis blocks in BZPOPMIN, so
    without a longer one every consumer that stays idle for 5 s fails (docs/platform-notes.md). Membership must not
    expire under a long-lived connection (streams and sockets leave their groups when they close).
    """
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [layer_host(url)],
            "prefix": "gw:layer:",
            "capacity": 1000,
            # A process's inbox carries everything the other processes send it (gateway_site.nodes).
            "channel_capacity": {"gw.node.*": 10_000},
            "expiry": 60,
            "group_expiry": 10 * 365 * 86400,
        },
    }
