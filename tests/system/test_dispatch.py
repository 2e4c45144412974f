"""The consumers' message loop (gateway_site/dispatch.py): order, one handler at a time, bounded read-ahead, failures
passed through, and no task left behind."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.exceptions import StopConsumer

from gateway_site.dispatch import dispatch_from

BOUND = 5.0


class Feed:
    """A source backed by a queue; counts how many messages were taken from it."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.taken = 0

    async def __call__(self) -> dict[str, Any]:
        item = await self.queue.get()
        self.taken += 1
        if isinstance(item, BaseException):
            raise item
        return item


async def _until(condition: Any) -> None:
    async with asyncio.timeout(BOUND):
        while not condition():
            await asyncio.sleep(0)


def _stop_after(count: int, seen: list[dict[str, Any]]) -> Any:
    async def dispatch(message: dict[str, Any]) -> None:
        seen.append(message)
        if len(seen) == count:
            raise StopConsumer()

    return dispatch


def _other_tasks() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


async def test_one_source_dispatches_in_order() -> None:
    feed = Feed()
    for n in range(5):
        feed.queue.put_nowait({"n": n})
    seen: list[dict[str, Any]] = []
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(dispatch_from([feed], _stop_after(5, seen)), BOUND)
    assert [m["n"] for m in seen] == [0, 1, 2, 3, 4]


async def test_two_sources_each_keep_their_order_and_handlers_never_overlap() -> None:
    client, layer = Feed(), Feed()
    seen: list[dict[str, Any]] = []
    running = 0
    overlapped = False

    async def dispatch(message: dict[str, Any]) -> None:
        nonlocal running, overlapped
        running += 1
        overlapped = overlapped or running > 1
        await asyncio.sleep(0)  # give the pumps a turn while this handler runs
        seen.append(message)
        running -= 1
        if len(seen) == 20:
            raise StopConsumer()

    before = _other_tasks()
    for n in range(10):
        client.queue.put_nowait({"from": "client", "n": n})
        layer.queue.put_nowait({"from": "layer", "n": n})
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(dispatch_from([client, layer], dispatch), BOUND)
    assert not overlapped
    assert [m["n"] for m in seen if m["from"] == "client"] == list(range(10))
    assert [m["n"] for m in seen if m["from"] == "layer"] == list(range(10))
    assert _other_tasks() == before  # the pumps were cancelled and awaited


async def test_while_a_handler_runs_the_client_is_not_read_and_a_pump_holds_one_message() -> None:
    client, layer = Feed(), Feed()
    release = asyncio.Event()
    seen: list[dict[str, Any]] = []

    async def dispatch(message: dict[str, Any]) -> None:
        seen.append(message)
        await release.wait()
        if len(seen) == 20:
            raise StopConsumer()

    for n in range(10):
        client.queue.put_nowait({"from": "client", "n": n})
        layer.queue.put_nowait({"from": "layer", "n": n})
    loop = asyncio.ensure_future(dispatch_from([client, layer], dispatch))
    await _until(lambda: len(seen) == 1 and client.taken + layer.taken == 2)
    for _ in range(20):  # however long the handler stays blocked, nothing more is read
        await asyncio.sleep(0)
    assert len(seen) == 1 and client.taken + layer.taken == 2
    release.set()
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(loop, BOUND)
    assert [m["n"] for m in seen if m["from"] == "client"] == list(range(10))
    assert [m["n"] for m in seen if m["from"] == "layer"] == list(range(10))


async def test_a_failing_source_raises_in_the_loop_and_the_other_pump_is_cancelled() -> None:
    client, layer = Feed(), Feed()
    seen: list[dict[str, Any]] = []
    before = _other_tasks()
    client.queue.put_nowait({"n": 0})
    loop = asyncio.ensure_future(dispatch_from([client, layer], _stop_after(99, seen)))
    await _until(lambda: len(seen) == 1)
    layer.queue.put_nowait(ConnectionError("redis went away"))
    with pytest.raises(ConnectionError, match="redis went away"):
        await asyncio.wait_for(loop, BOUND)
    assert _other_tasks() == before


async def test_cancelling_the_loop_cancels_the_pumps() -> None:
    client, layer = Feed(), Feed()
    before = _other_tasks()
    loop = asyncio.ensure_future(dispatch_from([client, layer], _stop_after(99, [])))
    await _until(lambda: len(_other_tasks() - before) == 2)  # the loop and the layer's pump
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert _other_tasks() == before


class Deaf:
    """A source that loses the first `lost` cancellations and goes on waiting, as the Redis layer's receive can when it
    is cancelled while it opens its connection (gateway_site/dispatch.py)."""

    def __init__(self, lost: int) -> None:
        self.lost = lost
        self.entered = asyncio.Event()
        self.ended = asyncio.Event()

    async def __call__(self) -> dict[str, Any]:
        self.entered.set()
        try:
            while True:
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    if self.lost == 0:
                        raise
                    self.lost -= 1
        finally:
            self.ended.set()


async def test_a_pump_that_loses_its_cancellation_is_cancelled_again() -> None:
    client, layer = Feed(), Deaf(lost=2)
    before = _other_tasks()
    loop = asyncio.ensure_future(dispatch_from([client, layer], _stop_after(1, [])))
    await asyncio.wait_for(layer.entered.wait(), BOUND)
    client.queue.put_nowait({"n": 0})
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(loop, BOUND)
    assert layer.ended.is_set() and layer.lost == 0
    assert _other_tasks() == before


async def test_cancelling_the_loop_ends_a_deaf_pump_too() -> None:
    client, layer = Feed(), Deaf(lost=3)
    before = _other_tasks()
    loop = asyncio.ensure_future(dispatch_from([client, layer], _stop_after(99, [])))
    await asyncio.wait_for(layer.entered.wait(), BOUND)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loop, BOUND)
    assert layer.ended.is_set()
    assert _other_tasks() == before


async def test_a_source_that_turns_its_cancellation_into_an_error_still_stops() -> None:
    class Converting(Feed):
        async def __call__(self) -> dict[str, Any]:
            try:
                return await super().__call__()
            except asyncio.CancelledError:
                raise ConnectionError("connection closed while reading") from None

    client, layer = Feed(), Converting()
    before = _other_tasks()
    for n in range(3):  # the inbox is full when the loop stops: a failure handed on now would wait for a reader
        client.queue.put_nowait({"n": n})
    with pytest.raises(StopConsumer):
        await asyncio.wait_for(dispatch_from([client, layer], _stop_after(1, [])), BOUND)
    assert _other_tasks() == before


@pytest.mark.parametrize("error", [StopConsumer(), ValueError("no handler for message type x")])
async def test_a_handler_that_raises_in_a_pump_ends_the_loop_with_its_exception(error: BaseException) -> None:
    client, layer = Feed(), Feed()
    before = _other_tasks()

    handled: list[dict[str, Any]] = []

    async def dispatch(message: dict[str, Any]) -> None:
        if message["from"] == "layer":
            raise error
        handled.append(message)

    loop = asyncio.ensure_future(dispatch_from([client, layer], dispatch))
    client.queue.put_nowait({"from": "client"})
    await _until(lambda: bool(handled))  # the client's message was handled; the loop waits for the next
    layer.queue.put_nowait({"from": "layer"})
    with pytest.raises(type(error)):
        await asyncio.wait_for(loop, BOUND)
    assert _other_tasks() == before


async def test_a_failing_source_does_not_interrupt_the_handler_that_is_running() -> None:
    client, layer = Feed(), Feed()
    release = asyncio.Event()
    finished: list[dict[str, Any]] = []

    async def dispatch(message: dict[str, Any]) -> None:
        await release.wait()
        finished.append(message)

    loop = asyncio.ensure_future(dispatch_from([client, layer], dispatch))
    client.queue.put_nowait({"n": 0})
    await _until(lambda: client.taken == 1)
    layer.queue.put_nowait(ConnectionError("redis went away"))
    await _until(lambda: layer.taken == 1)
    for _ in range(20):
        await asyncio.sleep(0)
    assert not loop.done()  # the failure waits for the turn
    release.set()
    with pytest.raises(ConnectionError, match="redis went away"):
        await asyncio.wait_for(loop, BOUND)
    assert finished == [{"n": 0}]


async def test_a_cancel_from_outside_wins_over_a_pump_failure() -> None:
    client, layer = Feed(), Feed()
    release = asyncio.Event()

    async def dispatch(message: dict[str, Any]) -> None:
        await release.wait()

    loop = asyncio.ensure_future(dispatch_from([client, layer], dispatch))
    client.queue.put_nowait({"n": 0})
    await _until(lambda: client.taken == 1)
    layer.queue.put_nowait(ConnectionError("redis went away"))
    await _until(lambda: layer.taken == 1)
    loop.cancel()  # the server gives up on the connection while the handler runs
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(loop, BOUND)


@pytest.mark.parametrize("sources", [1, 2])
async def test_other_tasks_get_a_turn_between_messages_that_are_all_ready(sources: int) -> None:
    # A burst of frames arrives in one read: the loop must still let a session's stream writers run between them.
    feeds: list[Any] = [Feed() for _ in range(sources)]
    for n in range(100):
        feeds[0].queue.put_nowait({"n": n})
    turns = 0
    seen: list[dict[str, Any]] = []
    turns_seen: list[int] = []

    async def other() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    async def dispatch(message: dict[str, Any]) -> None:
        seen.append(message)
        turns_seen.append(turns)
        if len(seen) == 100:
            raise StopConsumer()

    side = asyncio.ensure_future(other())
    try:
        with pytest.raises(StopConsumer):
            await asyncio.wait_for(dispatch_from(feeds, dispatch), BOUND)
    finally:
        side.cancel()
    assert all(later > earlier for earlier, later in zip(turns_seen, turns_seen[1:], strict=False))
