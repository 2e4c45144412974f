"""An ordered lane for the session frames of one agent socket (Redis mode; docs/scaling.md "Relaying in Redis mode").

With the stores in Redis, handling a frame waits for a round trip. A socket that awaited each frame before reading
the next would relay at most one frame per round trip, however idle the process. The lane takes the frames in
arrival order and one task of its own handles them in batches of whatever arrived meanwhile, so the socket reads on
while the store answers, and a batch costs one round trip, not one per frame. The order of frames is kept: a batch
is handed over whole, batches one after another. The queue is bounded; a full lane makes the socket wait, which
pushes back on the agent.

In memory mode no frame waits on anything and the socket handles each one directly, without a lane.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

QUEUE_LIMIT = 256
BATCH_LIMIT = 64


class FrameLane(Generic[T]):
    """`handle` gets each batch in order; `fail` is called once if it raises (the lane then takes nothing more)."""

    def __init__(
        self,
        handle: Callable[[list[T]], Awaitable[None]],
        fail: Callable[[Exception], Awaitable[None]],
        *,
        limit: int = QUEUE_LIMIT,
        batch: int = BATCH_LIMIT,
    ) -> None:
        self._handle, self._fail, self._batch = handle, fail, batch
        self._queue: asyncio.Queue[T] = asyncio.Queue(limit)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def put(self, item: T) -> None:
        """Queue `item` (waiting while the lane is full); dropped once the lane has failed or stopped."""
        if self._closed:
            return
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        await self._queue.put(item)

    async def _run(self) -> None:
        while not self._closed:
            items = [await self._queue.get()]
            while len(items) < self._batch and not self._queue.empty():
                items.append(self._queue.get_nowait())
            try:
                await self._handle(items)
            except Exception as exc:
                self._closed = True
                self._discard(len(items))
                await self._fail(exc)
                return
            self._discard(len(items))
        self._discard(0)

    def _discard(self, done: int) -> None:
        for _ in range(done):
            self._queue.task_done()
        if self._closed:
            while not self._queue.empty():
                self._queue.get_nowait()
                self._queue.task_done()

    async def drain(self, timeout: float) -> None:
        """Wait, at most `timeout` seconds, until the frames already queued are handled."""
        if self._closed or self._task is None or self._task is asyncio.current_task() or self._task.done():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout)

    def stop(self) -> None:
        """Take nothing more and cancel what is left (not from inside the lane's own task: it ends by itself)."""
        self._closed = True
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def pending(self) -> int:
        return self._queue.qsize()
