"""relay.frame_lane: the ordered lane of an agent socket's session frames in Redis mode."""

from __future__ import annotations

import asyncio

import pytest

from relay.frame_lane import FrameLane


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.failures: list[Exception] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()
        self.fail_on: int | None = None

    async def handle(self, batch: list[int]) -> None:
        self.entered.set()
        await self.gate.wait()
        if self.fail_on is not None and self.fail_on in batch:
            raise RuntimeError("store down")
        self.batches.append(batch)

    async def fail(self, exc: Exception) -> None:
        self.failures.append(exc)


async def wait_until(condition, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), timeout)


async def test_items_are_handled_in_order_and_what_arrives_meanwhile_comes_as_one_batch():
    recorder = Recorder()
    lane: FrameLane[int] = FrameLane(recorder.handle, recorder.fail, batch=3)
    recorder.gate.clear()
    await lane.put(1)
    await recorder.entered.wait()  # the first batch is being handled: the next items wait together
    for n in range(2, 8):
        await lane.put(n)
    recorder.gate.set()
    await lane.drain(5)
    assert recorder.batches == [[1], [2, 3, 4], [5, 6, 7]]
    assert lane.pending() == 0 and recorder.failures == []
    lane.stop()


async def test_a_full_lane_makes_the_producer_wait():
    recorder = Recorder()
    lane: FrameLane[int] = FrameLane(recorder.handle, recorder.fail, limit=2)
    recorder.gate.clear()
    await lane.put(1)
    await recorder.entered.wait()
    await lane.put(2)
    await lane.put(3)
    blocked = asyncio.ensure_future(lane.put(4))
    await asyncio.sleep(0)
    assert not blocked.done()  # the queue holds 2 and 3
    recorder.gate.set()
    await asyncio.wait_for(blocked, 5)
    await lane.drain(5)
    assert [n for batch in recorder.batches for n in batch] == [1, 2, 3, 4]
    lane.stop()


async def test_a_failing_batch_is_reported_once_and_the_lane_takes_nothing_more():
    recorder = Recorder()
    recorder.fail_on = 2
    lane: FrameLane[int] = FrameLane(recorder.handle, recorder.fail, batch=1)
    recorder.gate.clear()
    for n in (1, 2, 3):
        await lane.put(n)
    recorder.gate.set()
    await wait_until(lambda: recorder.failures)
    await lane.put(4)  # dropped
    await lane.drain(1)
    assert recorder.batches == [[1]]
    assert len(recorder.failures) == 1 and str(recorder.failures[0]) == "store down"
    assert lane.pending() == 0


async def test_drain_is_bounded_and_stop_cancels_the_rest():
    recorder = Recorder()
    lane: FrameLane[int] = FrameLane(recorder.handle, recorder.fail)
    recorder.gate.clear()
    await lane.put(1)
    await recorder.entered.wait()
    await lane.drain(0.05)  # the handler never finishes: drain gives up in time
    lane.stop()
    await lane.put(2)  # dropped once stopped
    assert lane.pending() == 0
    assert recorder.batches == [] and recorder.failures == []
    await lane.drain(1)  # nothing left to wait for


@pytest.mark.parametrize("stop_inside", [True, False])
async def test_stop_from_inside_the_handler_ends_the_lane_after_that_batch(stop_inside):
    recorder = Recorder()
    lane: FrameLane[int] = FrameLane(recorder.handle, recorder.fail, batch=1)

    async def handle(batch: list[int]) -> None:
        recorder.batches.append(batch)
        if stop_inside and batch == [1]:
            lane.stop()
            await lane.drain(5)  # from inside the lane: returns at once instead of waiting on itself

    lane._handle = handle
    for n in (1, 2, 3):
        await lane.put(n)
    if stop_inside:
        await wait_until(lambda: lane._task is not None and lane._task.done())  # the lane ended by itself
        assert recorder.batches == [[1]] and lane.pending() == 0
    else:
        await lane.drain(5)
        assert recorder.batches == [[1], [2], [3]]
        lane.stop()
