"""How the gateway's Channels consumers take their messages: Channels' `AsyncConsumer.__call__` with a cheaper loop.

Channels waits for the next message from the client and from the channel layer with `await_many_dispatch`: per
message it creates a new task for the source that delivered and runs `asyncio.wait` over both, a future and two
done-callbacks each time. On an agent socket that relays thousands of frames a second that bookkeeping was a
visible part of the agent → client profile (docs/performance.md). Here the consumer's own task reads the client and
runs the handler of each message; every other source (the channel layer) has one long-lived pump task that reads it
and runs the handlers of its messages itself. A lock, the turn, lets one handler run at a time, as under Channels,
and each source's messages are handled in the order they arrived. `python -m bench.dispatch_loop` times both loops.

A pump's source that fails (in Redis mode the channel-layer receive raises when Redis goes down), or a handler that
raises in a pump (StopConsumer ends a consumer), ends the consumer's task with that exception, as it did under
Channels, and gateway_site.outage handles it there: the pump takes the turn first, so no handler of the consumer's
task is interrupted, then cancels that task, which raises the pump's exception instead of the cancellation.

A source can lose a cancellation: with redis-py 8 on Python 3.11 the channel-layer receive, cancelled while it opens
its Redis connection, goes on to block in BZPOPMIN as if nothing had happened. Channels cancels once and waits, which
then waits forever (the socket's task never ends); here a pump that is still running after a short wait is cancelled
again until it ends.

Each loop gives the event loop a turn after every handler (`asyncio.sleep(0)`). A source often has many messages
ready at once (a burst of agent frames arrives in one read), and taking them without ever yielding would starve every
other task: a session's streams, whose writers then fall behind until the reader's byte budget cuts them (under
Channels a new task per message gave that turn by accident).

Read-ahead stays bounded: the client is read only when the previous handler is done, and a pump holds at most the
one message that waits for its turn.
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
    """Run `dispatch` on each message of `sources`, one at a time, until it raises (StopConsumer ends a consumer).
    The first source is read by the calling task, each other one by a pump task."""
    first, *others = sources
    if not others:
        while True:
            await dispatch(await first())
            await asyncio.sleep(0)
    turn = asyncio.Lock()
    consumer = asyncio.current_task()
    assert consumer is not None
    failures: list[BaseException] = []

    def fail(exc: BaseException) -> None:  # called with the turn held: the consumer's task is between handlers
        if not failures:
            failures.append(exc)
            consumer.cancel()

    async def pump(source: Source) -> None:
        while True:
            try:
                message = await source()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - raised on in the consumer's task
                if cancelling():  # the source turned our cancellation into an error of its own: stop all the same
                    raise asyncio.CancelledError from exc
                async with turn:
                    fail(exc)
                return
            async with turn:
                try:
                    await dispatch(message)
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:  # noqa: BLE001 - raised on in the consumer's task
                    fail(exc)
                    return
            await asyncio.sleep(0)

    pumps = [asyncio.ensure_future(pump(source)) for source in others]
    try:
        while True:
            try:
                message = await first()
                async with turn:
                    await dispatch(message)
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                if failures and consumer.uncancel() == 0:  # cancelled by a pump only, not from outside as well
                    raise failures[0] from None
                raise
    finally:
        await _stop(pumps)


def cancelling() -> bool:
    """Whether the running task has been asked to cancel: for a caller whose await turned that request into an error
    of its own (redis-py and channels_redis can), and that must stop all the same (also gateway_site.nodes)."""
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
