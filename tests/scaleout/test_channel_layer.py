"""The channel layer of the Redis mode, as settings configure it, on a real Redis server (docs/scaling.md).

redis-py 8 reads with a 5 s socket timeout unless told otherwise, and channels_redis blocks 5 s per BZPOPMIN while a
consumer waits for a message: without the settings' longer timeout every consumer that stays idle for 5 s dies with
`redis.exceptions.TimeoutError` (docs/platform-notes.md)."""

from __future__ import annotations

import asyncio
import time

import pytest
from channels_redis.core import RedisChannelLayer

from gateway_site import redis_state


async def test_an_idle_consumer_outlives_the_blocking_read(redis_url):
    layer = RedisChannelLayer(**redis_state.channel_layer(redis_url)["CONFIG"])
    channel = await layer.new_channel()
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):  # nothing arrived: the wait ran out, the read did not fail
        await asyncio.wait_for(layer.receive(channel), timeout=6.5)
    assert time.monotonic() - started >= 6
    await layer.send(channel, {"type": "probe", "n": 1})
    assert await asyncio.wait_for(layer.receive(channel), timeout=5) == {"type": "probe", "n": 1}
    await layer.flush()
