"""The state mode of the test run: `GATEWAY_TEST_STATE=memory` (the default) or `redis` (CONTRIBUTING.md).

In Redis mode every test runs on the stores and the channel layer that `STATE_BACKEND=redis` selects in production
(gateway_site.state_backends), against one real Redis server for the whole run (tests/redis_server.py), emptied
before each test. Tests that depend on the in-process stores are marked `memory_only` and skipped in Redis mode.
"""

from __future__ import annotations

import dataclasses
import os

import pytest

VARIABLE = "GATEWAY_TEST_STATE"
MODES = ("memory", "redis")


def mode() -> str:
    value = os.environ.get(VARIABLE, "memory").strip().lower() or "memory"
    if value not in MODES:
        raise pytest.UsageError(f'{VARIABLE}="{value}" is not a state mode (use "memory" or "redis")')
    return value


def forget_configured_state() -> None:
    """Drop every store this process has made from the settings, so the next use builds them from the current ones
    (the channel layers follow CHANNEL_LAYERS by themselves, through Django's setting_changed)."""
    from gateway_site import kvstore
    from gateway_site.leases import lease_store
    from relay.session_store import session_store
    from relay.stores import presence_store
    from tunnels import delivery, inspector

    session_store.cache_clear()
    presence_store.cache_clear()
    lease_store.cache_clear()
    kvstore._stores.clear()
    inspector._log.clear()  # picked by settings.GATEWAY.state_backend
    delivery._bindings.cache_clear()  # route bindings in Redis, on settings.GATEWAY.redis_url


def flush(url: str) -> None:
    """Empty the Redis database at `url` (a blocking client of its own: the tests' event loops come and go)."""
    import redis

    with redis.Redis.from_url(url, socket_timeout=10) as client:
        client.flushdb()


def use_redis(settings, url: str) -> None:
    """Select, through pytest-django's `settings` (restored after the test), everything that production selects with
    STATE_BACKEND=redis and REDIS_URL=`url`, on an empty database."""
    from gateway_site import state_backends

    flush(url)
    settings.GATEWAY = dataclasses.replace(settings.GATEWAY, state_backend="redis", redis_url=url)
    for name, path in state_backends.STORES["redis"].items():
        setattr(settings, name, path)
    settings.CHANNEL_LAYERS = state_backends.channel_layers("redis", url)
    forget_configured_state()


async def forget_sweep_claim() -> None:
    """Let the next caller sweep the sessions again (relay.sessions.sweep_if_due claims one sweep per period)."""
    from gateway_site.boundedstore import bounded_store
    from relay import sessions
    from relay.redis_session_store import RedisSessionStore
    from relay.session_store import session_store

    store = session_store()
    if isinstance(store, RedisSessionStore):
        await store.client().delete(f"{store.prefix}sweep")
    else:
        bounded_store("session-sweep", ttl=sessions.SWEEP_PERIOD_SECONDS, max_entries=1).clear()
