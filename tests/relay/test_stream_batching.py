"""Per-frame costs of the agent -> client path: a session stream writes a burst of queued events in one write, in
order; one event's SSE bytes are rendered once for all the streams of a session; frames without transport fields
are not copied; the relay's JSON is unchanged."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway_site.sse import comment_bytes, event_bytes
from relay import delivery, event_streams, frames
from relay.event_streams import SessionEventsConsumer
from relay.registry import StreamEvent, streams
from relay.sessions import dumps


class Recorder(SessionEventsConsumer):
    """The stream's pump with its socket replaced by a list of writes."""

    def __init__(self) -> None:
        self.scope: dict[str, Any] = {}
        self.session_id, self.uid, self.device_id = "sess_batch", "u1", "dev_1"
        self.queue = asyncio.Queue(self.QUEUE_SIZE)
        self.last_sent = 0
        self.writes: list[bytes] = []
        self.stopped = asyncio.Event()

    async def write(self, data: bytes) -> None:
        self.writes.append(data)

    def _stop_soon(self) -> None:
        self.stopped.set()


async def _pump_until_written(stream: Recorder, count: int) -> None:
    task = asyncio.ensure_future(stream._pump())
    try:
        async with asyncio.timeout(5):
            while len(stream.writes) < count:
                await asyncio.sleep(0)
    finally:
        task.cancel()


async def test_a_burst_goes_out_in_one_write_in_order():
    stream = Recorder()
    events = [StreamEvent(n, "session.event", json.dumps({"n": n})) for n in range(1, 11)]
    for event in events:
        stream.offer(event)
    stream.queue.put_nowait(("comment", "heartbeat"))
    assert stream.queued_bytes == sum(event.size for event in events)
    await _pump_until_written(stream, 1)
    expected = b"".join(event_bytes(e.name, e.data, str(e.event_id)) for e in events) + comment_bytes("heartbeat")
    assert stream.writes == [expected]
    assert stream.queued_bytes == 0 and stream.last_sent == 10


async def test_a_burst_larger_than_the_batch_takes_several_writes_and_skips_ids_already_sent(monkeypatch):
    monkeypatch.setattr(Recorder, "BATCH", 4)
    stream = Recorder()
    stream.last_sent = 2  # ids up to 2 went out in the replay
    for n in range(1, 11):
        stream.offer(StreamEvent(n, "e", "{}"))
    await _pump_until_written(stream, 3)
    written = b"".join(stream.writes)
    assert [line for line in written.split(b"\n") if line.startswith(b"id: ")] == [
        f"id: {n}".encode() for n in range(3, 11)
    ]
    assert len(stream.writes) == 3  # 4 + 4 + 2 queued items


async def test_an_end_writes_what_came_before_it_then_the_ending():
    stream = Recorder()
    sent: list[dict[str, Any]] = []

    class Layer:
        async def send(self, channel: str, message: dict[str, Any]) -> None:
            sent.append(message)

    stream.channel_layer = Layer()  # type: ignore[assignment]
    stream.channel_name = "me"
    stream.offer(StreamEvent(1, "e", "{}"))
    stream.end("grant_revoked")
    stream.offer(StreamEvent(2, "e", "{}"))  # after the end: never written
    await asyncio.wait_for(stream._pump(), 5)
    ended = {"type": "session.ended", "session_id": "sess_batch", "reason": "grant_revoked"}
    assert stream.writes == [event_bytes("e", "{}", "1") + event_bytes("session.ended", ended)]
    assert sent == [{"type": "relay.stream_stop"}]


async def test_one_event_is_rendered_once_for_all_the_streams_of_its_session(monkeypatch):
    rendered: list[int] = []

    def counting(name: str, data: Any, event_id: str | None = None) -> bytes:
        rendered.append(1)
        return event_bytes(name, data, event_id)

    monkeypatch.setattr(event_streams, "event_bytes", counting)
    readers = [Recorder() for _ in range(3)]
    for reader in readers:
        streams.add("sess_batch", reader)
    try:
        await delivery.publish_session_events([("sess_batch", 7, "session.event", '{"a":1}', frozenset())])
        for reader in readers:
            await _pump_until_written(reader, 1)
    finally:
        for reader in readers:
            streams.remove("sess_batch", reader)
    assert [reader.writes for reader in readers] == [[event_bytes("session.event", '{"a":1}', "7")]] * 3
    assert len(rendered) == 1


def test_a_frame_without_transport_fields_is_not_copied():
    frame = {"type": "session.result", "seq": 1}
    assert frames.strip_transport(frame) is frame
    with_token = {"type": "session.result", "transport_token": "t", "t_seq": 3, "connection_id": "c", "seq": 1}
    stripped = frames.strip_transport(with_token)
    assert stripped == {"type": "session.result", "seq": 1} and "transport_token" in with_token


def test_relay_json_is_compact_and_keeps_non_ascii():
    data = {"type": "x", "text": "h\u00e9llo \u2028", "n": [1, 2.5, None, True]}
    assert dumps(data) == json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    assert dumps(data) == '{"type":"x","text":"h\u00e9llo \u2028","n":[1,2.5,null,true]}'
