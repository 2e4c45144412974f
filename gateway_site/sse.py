"""Server-Sent Events over Channels: a base `AsyncHttpConsumer` that stays open after `handle()`.

channels 4.3 ends the response as soon as `handle()` returns (docs/platform-notes.md §3), so `http_request` is
overridden to start the stream and return, leaving the consumer alive for channel-layer events and `http.disconnect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from django.conf import settings

from gateway_site import outage
from gateway_site.asgi_http import cors_headers
from gateway_site.dispatch import run_consumer
from gateway_site.errors import ApiError, FrameworkError, TooManyRequests, render, server_error
from gateway_site.leases import leases
from gateway_site.lifecycle import lifecycle
from gateway_site.transport import SCOPE_KEY

logger = logging.getLogger("gateway.sse")

STREAM_LEASE_SECONDS = 90
STREAM_RENEW_SECONDS = 30

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]


def event_bytes(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One SSE event; `data` is JSON-encoded unless it already is a string."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in text.split("\n"))
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def comment_bytes(text: str) -> bytes:
    return f":{text}\n\n".encode()


class OpenStreams:
    """Event streams open per user, for MAX_STREAMS_PER_USER (decisions.md H3): one lease per stream
    (gateway_site.leases), so every process sharing the lease store counts the same streams. A stream renews its
    lease while it lives; the leases of a process that died lapse after STREAM_LEASE_SECONDS."""

    @staticmethod
    def _key(uid: str) -> str:
        return f"streams:{uid}"

    async def admit(self, uid: str, limit: int, stream_id: str) -> None:
        if not await leases.acquire(self._key(uid), limit, stream_id, STREAM_LEASE_SECONDS):
            raise TooManyRequests("too many open streams", max_streams=limit)

    async def renew(self, uid: str, limit: int, stream_id: str) -> None:
        """Keep the stream's place; one that lapsed is taken again if there is room (an open stream is never cut for
        it)."""
        if not await leases.renew(self._key(uid), stream_id, STREAM_LEASE_SECONDS):
            await leases.acquire(self._key(uid), limit, stream_id, STREAM_LEASE_SECONDS)

    async def release(self, uid: str, stream_id: str) -> None:
        await leases.release(self._key(uid), stream_id)

    async def count(self, uid: str) -> int:
        return len(await leases.holders(self._key(uid)))


open_streams = OpenStreams()


class SseConsumer(AsyncHttpConsumer):
    """Subclasses implement `open_stream()` (authenticate, send the first bytes, join groups) and may add tasks.

    What one reader may hold is bounded (decisions.md H3): the bytes a subclass has queued (`queued_bytes`) plus what
    the server still buffers for the connection (gateway_site.transport) stay under STREAM_BUFFER_BYTES, or the
    reader is cut: its connection is aborted, which frees the server's buffer too.
    """

    stream_kind = ""  # what gateway_site.metrics counts the stream as (gateway_sse_streams_open{kind})
    streaming = False
    responded = False  # a response start (stream headers or an error) has been sent
    stream_owner = ""
    stream_id = ""
    queued_bytes = 0
    cut = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """In Redis mode the channel-layer receive that runs beside the handlers fails too when Redis goes down: the
        stream then ends as in `dispatch` (503 `state_unavailable` before the headers, the end of the body after
        them), instead of the exception reaching the server (a 500, or a cut connection holding on to everything)."""
        unavailable = await outage.unless_unavailable(run_consumer(self, scope, receive, send))
        if unavailable is not None:
            await self._close_response(unavailable)
            with contextlib.suppress(Exception):
                await self.disconnect()

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Whatever fails while a message is handled, the stream ends and gives back all it holds (`disconnect`):
        its subscriptions, its place in the per-user cap and in the shutdown drain (docs/protocol/decisions.md H9).
        A Redis outage is logged once per outage (gateway_site.outage), not once per stream."""
        try:
            await super().dispatch(message)
        except StopConsumer:
            raise
        except Exception as exc:
            unavailable = outage.unavailable(exc)
            if unavailable is None:
                logger.exception("event stream failed", extra={"fields": {"path": self.scope.get("path", "")}})
            await self._fail(unavailable)

    async def http_request(self, message: dict[str, Any]) -> None:
        if message.get("more_body"):
            return
        try:
            if lifecycle.shutting_down:
                raise FrameworkError(503)
            await self.open_stream()
        except Exception as exc:
            error = exc if isinstance(exc, ApiError) else outage.unavailable(exc)
            if error is None:
                raise
            if self.responded:
                await self.end_stream()  # the headers are out: the stream just ends
            else:
                await self._send_error(error)
                await self._finish()

    async def open_stream(self) -> None:
        raise NotImplementedError

    async def _send_error(self, exc: ApiError) -> None:
        self.responded = True
        rendered = render(exc)
        await self.send_response(
            rendered.status, rendered.body, headers=rendered.asgi_headers() + cors_headers(self.scope)
        )

    async def start_stream(self, uid: str) -> None:
        """Count the stream against `uid`'s cap (429 before any byte when over it), then send the headers."""
        stream_id = uuid.uuid4().hex
        await open_streams.admit(uid, settings.GATEWAY.max_streams_per_user, stream_id)
        self.stream_owner, self.stream_id = uid, stream_id
        self.start_task(self._renew_lease())
        self.responded = True
        # Streams are served ahead of Django, so they add the CORS headers its middleware would (docs/protocol/config.md
        # §7).
        await self.send_headers(status=200, headers=SSE_HEADERS + cors_headers(self.scope))
        self.streaming = True
        lifecycle.track(self)

    async def _renew_lease(self) -> None:
        while True:
            await asyncio.sleep(STREAM_RENEW_SECONDS)
            try:
                await open_streams.renew(self.stream_owner, settings.GATEWAY.max_streams_per_user, self.stream_id)
            except Exception:  # the store failed this time: the stream lives on, the next round tries again
                logger.warning("stream lease renewal failed", extra={"fields": {"path": self.scope.get("path", "")}})

    def buffered_bytes(self) -> int:
        """What this reader holds: bytes queued by the stream plus bytes the server has not yet sent."""
        probe = self.scope.get(SCOPE_KEY)
        return self.queued_bytes + (probe.pending() if probe is not None else 0)

    def over_budget(self, extra: int = 0) -> bool:
        return self.buffered_bytes() + extra > settings.GATEWAY.stream_buffer_bytes

    def cut_slow_reader(self) -> None:
        """Drop a reader over its budget: abort its connection (freeing the server's buffer) and stop the stream."""
        if self.cut:
            return
        self.cut = True
        logger.info(
            "slow stream reader cut",
            extra={"fields": {"path": self.scope.get("path", ""), "buffered_bytes": self.buffered_bytes()}},
        )
        probe = self.scope.get(SCOPE_KEY)
        if probe is not None:
            with contextlib.suppress(Exception):
                probe.abort()
        self.signal_self({"type": "gateway.stream_cut"})

    async def gateway_stream_cut(self, message: dict[str, Any]) -> None:
        self.streaming = False  # nothing more is written to an aborted connection
        await self._finish()

    async def gateway_stream_failed(self, message: dict[str, Any]) -> None:
        await self._fail()

    async def gateway_shutdown(self, message: dict[str, Any]) -> None:
        """The process is stopping (gateway_site.lifecycle): end the stream; clients reconnect with Last-Event-ID."""
        await self.end_stream()

    async def write(self, data: bytes) -> None:
        """Send `data`, unless the reader still holds more than its budget of what was sent before (a server
        without back-pressure, Daphne, buffers all we hand it): then it is cut. So at most the budget plus one
        write is ever buffered for a reader."""
        if self.cut:
            return
        if self.over_budget():
            self.cut_slow_reader()
            return
        await self.send_body(data, more_body=True)

    async def end_stream(self, last: bytes = b"") -> None:
        """End the response from the server side and stop the consumer."""
        if self.streaming:
            self.streaming = False
            await self.send_body(last, more_body=False)
        await self._finish()

    async def _fail(self, error: ApiError | None = None) -> None:
        """End the response as well as it still can, then stop the consumer."""
        await self._close_response(error or server_error())
        await self._finish()

    async def _close_response(self, error: ApiError) -> None:
        """`error` before the headers, the end of the body after them."""
        with contextlib.suppress(Exception):
            if self.streaming:
                self.streaming = False
                await self.send_body(b"", more_body=False)
            elif not self.responded:
                await self._send_error(error)

    async def _finish(self) -> None:
        await self.disconnect()
        raise StopConsumer()

    async def disconnect(self) -> None:
        """Give back everything the stream holds; safe to call more than once, and each step runs even if one
        before it fails."""
        lifecycle.untrack(self)
        for task in getattr(self, "_tasks", []):
            if task is not asyncio.current_task():
                task.cancel()
        self._tasks: list[asyncio.Task[Any]] = []
        if self.stream_owner:
            owner, self.stream_owner = self.stream_owner, ""
            try:
                await open_streams.release(owner, self.stream_id)
            except Exception:  # the lease lapses by itself; the groups must still be left
                logger.warning("stream lease release failed", extra={"fields": {"path": self.scope.get("path", "")}})
        await self.leave_groups()

    async def leave_groups(self) -> None:
        for group in getattr(self, "_groups", []):
            with contextlib.suppress(Exception):
                await self.channel_layer.group_discard(group, self.channel_name)
        self._groups: list[str] = []

    async def join_group(self, group: str) -> None:
        self._groups = [*getattr(self, "_groups", []), group]  # recorded first: a failed add is still discarded
        await self.channel_layer.group_add(group, self.channel_name)

    def start_task(self, coro: Any) -> asyncio.Task[Any]:
        """A task of this stream: cancelled when the stream ends; if it fails, the stream ends (`_fail`)."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.add_done_callback(self._task_done)
        self._tasks = [*getattr(self, "_tasks", []), task]
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is None or task not in getattr(self, "_tasks", []):
            return  # done, cancelled, or the stream has already ended
        failure = task.exception()
        if failure is not None and outage.unavailable(failure) is None:
            logger.error(
                "event stream task failed", exc_info=failure, extra={"fields": {"path": self.scope.get("path", "")}}
            )
        self.signal_self({"type": "gateway.stream_failed"})

    def signal_self(self, message: dict[str, Any]) -> None:
        """Have this stream's own task handle `message` (sent to its channel; never blocks). In Redis mode the send
        fails while Redis is down; the stream's channel receive then fails as well, which ends it (`__call__`)."""
        sending = asyncio.ensure_future(self.channel_layer.send(self.channel_name, message))
        sending.add_done_callback(_signal_sent)


def _signal_sent(sending: asyncio.Future[Any]) -> None:
    failure = None if sending.cancelled() else sending.exception()
    if failure is not None and outage.unavailable(failure) is None:
        logger.error("event stream signal failed", exc_info=failure)
