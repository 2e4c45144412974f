"""What each `STATE_BACKEND` selects (docs/scaling.md): the implementation of every store, by import path, and the
channel layer. The settings read it; so does the test run that puts the in-process suites on Redis
(`GATEWAY_TEST_STATE=redis`, CONTRIBUTING.md), so both select exactly the same stores."""

from __future__ import annotations

from typing import Any

from gateway_site import redis_state

STORES: dict[str, dict[str, str]] = {
    "memory": {
        "GATEWAY_SESSION_STORE": "relay.session_store.MemorySessionStore",
        "GATEWAY_PRESENCE_STORE": "relay.stores.MemoryPresenceStore",
        "GATEWAY_KEY_VALUE_STORE": "gateway_site.kvstore.MemoryKeyValueStore",
        "GATEWAY_LEASES": "gateway_site.leases.MemoryLeases",
    },
    "redis": {
        "GATEWAY_SESSION_STORE": "relay.redis_session_store.RedisSessionStore",
        "GATEWAY_PRESENCE_STORE": "relay.redis_presence.RedisPresenceStore",
        "GATEWAY_KEY_VALUE_STORE": "gateway_site.redis_stores.RedisKeyValueStore",
        "GATEWAY_LEASES": "gateway_site.redis_stores.RedisLeases",
    },
}

# The in-process layer. Streams and sockets leave their groups when they close, so membership must not expire under
# a long-lived connection (the layer's default drops it after a day).
MEMORY_LAYER: dict[str, Any] = {
    "BACKEND": "channels.layers.InMemoryChannelLayer",
    "CONFIG": {"capacity": 1000, "expiry": 60, "group_expiry": 10 * 365 * 86400},
}


def channel_layers(backend: str, redis_url: str) -> dict[str, Any]:
    """The CHANNEL_LAYERS setting of `backend`: in process, or channels_redis on `redis_url` for several processes."""
    layer = redis_state.channel_layer(redis_url) if backend == "redis" else MEMORY_LAYER
    return {"default": layer}
