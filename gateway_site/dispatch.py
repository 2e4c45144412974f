"""How the gateway's Channels consumers take their messages: Channels' `AsyncConsumer.__call__` with a cheaper loop.

Channels waits for the next message from the client and from the channel layer with `await_many_dispatch`: per
message it creates a new task for the source that delivered and runs `asyncio.wait` over both, a future and two
done-callbacks each time. On an agent socket that relays thousands of frames a second that bookkeeping was a
visible part of the agent → client profile (docs/performance.md). Here each source has one long-lived pump task
that hands its messages to the consumer through a queue of one; the consumer takes them in arrival order and runs
its handlers one at a time, as before. A source that fails (in Redis mode the channel-layer receive raises when
Redis goes down) passes its exception through the queue, so it reaches the consumer's loop as it did under Channels,
and gateway_site.outage handles it there.

A source can lose a cancellation: with redis-py 8 on Python 3.11 the channel-layer receive, cancelled while it opens
its Redis connection, goes on to block in BZPOPMIN as if nothing had happened. Channels cancels once and waits, which
then waits forever (the socket's task never ends); here a pump that is still running after a short wait is cancelled
again until it ends.

Backpressure stays bounded: a pump holds at most one message beside the one in the queue, so at most two messages
of a source are read ahead of the handler that is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer

# How long a cancelled pump gets to end before it is cancelled again (a lost cancellation, see above).
RECANCEL_SECONDS = 0.05

Source = Callable[[], Awaitable[dict[str, Any]]]
Dispatch = Callable[[dict[str, Any]], Awaitable[None]]


class _Failed:
    """What a pump puts in the queue when its source raised."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def run_consumer(consumer: Any, scope: dict[str, Any], receive: Source, send: Any) -> None:
    """Do what `AsyncConsumer.__call__` does for an async consumer, dispatching with `dispatch_from`."""
    consumer.scope = scope
    consumer.channel_layer = get_channel_layer(consumer.channel_layer_alias)
    sources = [receive]
    if consumer.channel_layer is not None:
        consumer.channel_name = await consumer.channel_layer.new_channel()
        consumer.channel_receive = functools.partial(consumer.channel_layer.receive, consumer.channel_name)
        sources.append(consumer.channel_receive)
    consumer.base_send = send
    with contextlib.suppress(StopConsumer):
        await dispatch_from(sources, consumer.dispatch)


async def dispatch_from(sources: list[Source], dispatch: Dispatch) -> None:
    """Run `dispatch` on each message of `sources`, one at a time, until it raises (StopConsumer ends a consumer)."""
    if len(sources) == 1:
        source = sources[0]
        while True:
            await dispatch(await source())
    inbox: asyncio.Queue[dict[str, Any] | _Failed] = asyncio.Queue(maxsize=1)

    async def pump(source: Source) -> None:
        while True:
            try:
                message: dict[str, Any] | _Failed = await source()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer's loop, which re-raises it
                if _cancelling():  # the source turned our cancellation into an error of its own: stop all the same
                    raise asyncio.CancelledError from exc
                await inbox.put(_Failed(exc))
                return
            await inbox.put(message)

    pumps = [asyncio.ensure_future(pump(source)) for source in sources]
    try:
        while True:
            item = await inbox.get()
            if isinstance(item, _Failed):
                raise item.exc
            await dispatch(item)
    finally:
        await _stop(pumps)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def _stop(pumps: list[asyncio.Task[None]]) -> None:
    """Cancel the pumps and wait until each has ended, cancelling again any that lost its cancellation. A cancel of
    the consumer's own task meanwhile does not cut this short: it is raised on by the `finally` this runs in."""
    pending = set(pumps)
    while pending:
        for task in pending:
            task.cancel()
        try:
            _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
        except asyncio.CancelledError:
            pending = {task for task in pending if not task.done()}
    for task in pumps:  # a pump ends cancelled or after handing its failure on; nothing is left unretrieved
        if not task.cancelled():
            task.exception()
