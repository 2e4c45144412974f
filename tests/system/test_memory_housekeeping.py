"""What gives memory back: the housekeeping pass over the bounded stores, and Daphne's request queue that keeps chunk
positions instead of chunk bytes (gateway_site.daphne_compat)."""

from __future__ import annotations

import asyncio
import io

from gateway_site import housekeeping
from gateway_site.boundedstore import bounded_store
from gateway_site.daphne_compat import BodyChunk, read_lazily


def test_housekeeping_drops_expired_entries_without_any_write():
    store = bounded_store("housekeeping-test", ttl=5, max_entries=100)
    clock = [0.0]
    store._clock = lambda: clock[0]
    for i in range(50):
        store.set(f"k{i}", i)
    clock[0] = 6.0
    trimmed = []
    housekeeping.run_once(lambda: trimmed.append(True))
    assert len(store) == 0 and trimmed == [True]


class Request:
    def __init__(self, body: bytes) -> None:
        self.content = io.BytesIO(body)


async def test_the_daphne_queue_holds_positions_and_reads_chunks_on_demand():
    body = bytes(range(256)) * 100
    request = Request(body)
    queue: asyncio.Queue = asyncio.Queue()
    read_lazily(queue, request)
    for offset in range(0, len(body), 8192):  # as Daphne feeds it: every chunk at once, before the app runs
        chunk = request.content.read(8192)
        queue.put_nowait({"type": "http.request", "body": chunk, "more_body": offset + 8192 < len(body)})
    queue.put_nowait({"type": "http.disconnect"})
    pending = list(queue._queue)  # type: ignore[attr-defined]  # Queue's private deque is not in typeshed
    assert all(isinstance(item, BodyChunk) for item in pending[:-1])  # no bytes are kept
    received = b""
    while True:
        message = await queue.get()
        if message["type"] != "http.request":
            break
        received += message["body"]
        if not message["more_body"]:
            assert (await queue.get())["type"] == "http.disconnect"
            break
    assert received == body


async def test_a_closed_request_reads_as_a_disconnect():
    request = Request(b"abc")
    queue: asyncio.Queue = asyncio.Queue()
    read_lazily(queue, request)
    queue.put_nowait({"type": "http.request", "body": request.content.read(), "more_body": False})
    request.content.close()
    assert await queue.get() == {"type": "http.disconnect"}
