"""The relay's event streams (Server-Sent Events): a user's device statuses (docs/protocol/devices-and-shares.md §7)
and one session's events (docs/protocol/relay.md §4.5)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from gateway_site import asgi_http
from gateway_site.auth import Principal, principal_from_scope
from gateway_site.errors import Forbidden
from gateway_site.sse import SseConsumer, comment_bytes, event_bytes
from gateway_site.timefmt import rfc3339
from relay import access, delivery, services, sessions
from relay.groups import user_group
from relay.registry import StreamEvent
from relay.session_events import sessions_sweep_due
from relay.session_requests import session_id_param
from relay.session_store import sessions as store

logger = logging.getLogger("gateway.relay")


class DeviceEventsConsumer(SseConsumer):
    """`GET /gateway/v1/devices/events` (docs/protocol/devices-and-shares.md §7): snapshot, then changes at every
    wake."""

    stream_kind = "devices"

    async def open_stream(self) -> None:
        self.principal = principal_from_scope(self.scope)
        self.sent: dict[str, str] = {}
        self.wake_lock = asyncio.Lock()
        self.expiry_timer: asyncio.Task[None] | None = None
        self.expiry_at = 0
        await self.join_group(user_group(self.principal.uid))
        await self.start_stream(self.principal.uid)
        await self.write(comment_bytes("connected"))
        await self._wake(initial=True)
        self.start_task(self._ticker())

    async def relay_devices_changed(self, message: dict[str, Any]) -> None:
        await self._wake()

    async def shares_access_ended(self, message: dict[str, Any]) -> None:
        """A grant of this user was revoked, left or deleted: drop the device now, not at the next tick."""
        await self._wake()

    async def _wake_at(self, when: int) -> None:
        """One extra wake when a shared device's grant expires, so expiry takes effect at once."""
        await asyncio.sleep(max(0.0, when - time.time()) + 1)
        self.expiry_timer = None
        await self._wake()

    async def _ticker(self) -> None:
        interval = settings.GATEWAY_DEVICE_EVENTS_WAKE_SECONDS
        while True:
            await asyncio.sleep(interval)
            await self._wake()

    def _schedule_expiry(self, when: int) -> None:
        if when == self.expiry_at and self.expiry_timer is not None:
            return
        if self.expiry_timer is not None and self.expiry_timer is not asyncio.current_task():
            self.expiry_timer.cancel()
        self.expiry_timer = None
        self.expiry_at = when
        if when:
            self.expiry_timer = self.start_task(self._wake_at(when))

    async def _wake(self, *, initial: bool = False) -> None:
        async with self.wake_lock:
            if not self.streaming:
                return
            chunks = [] if initial else [comment_bytes("heartbeat")]
            statuses, next_expiry = await services.device_view(principal=self.principal)
            self._schedule_expiry(next_expiry)
            for device_id, (status, at) in statuses.items():
                if self.sent.get(device_id) != status:
                    chunks.append(event_bytes("device.status", {"at": at, "deviceId": device_id, "status": status}))
                    self.sent[device_id] = status
            for device_id in [d for d in self.sent if d not in statuses]:
                del self.sent[device_id]
                now = rfc3339(time.time())
                chunks.append(event_bytes("device.status", {"at": now, "deviceId": device_id, "status": "offline"}))
            if chunks:
                await self.write(b"".join(chunks))


class SessionEventsConsumer(SseConsumer):
    """`GET /gateway/v1/sessions/{id}/events` (docs/protocol/relay.md §4.5, docs/protocol/decisions.md R4): replay after
    Last-Event-ID, then live.

    Subscribes before replaying, so nothing published in between is lost; ids not above the last one sent are
    dropped. A bounded queue (64) decouples publishers from the socket: a reader that falls that far behind is
    evicted and should reconnect with Last-Event-ID. Events that queued up while the stream was writing go out
    together, in one write.
    """

    QUEUE_SIZE = 64
    BATCH = 64  # queued items one write may carry
    stream_kind = "session"

    async def open_stream(self) -> None:
        principal = principal_from_scope(self.scope)
        session_id = session_id_param(self.scope["url_route"]["kwargs"]["session_id"])
        session = await sessions.load(session_id)
        if not await database_sync_to_async(self._member)(session, principal):
            raise Forbidden("forbidden")
        self.principal = principal
        self.uid = principal.uid
        self.session_id = session_id
        self.device_id = session["device_id"]
        self.queue: asyncio.Queue[StreamEvent | tuple[str, str | None]] = asyncio.Queue(self.QUEUE_SIZE)
        self.last_sent = 0
        await delivery.subscribe(session_id, self)
        await self.join_group(user_group(principal.uid))
        await self.start_stream(principal.uid)
        await self.write(comment_bytes("connected"))
        replay = await store.events_after(session_id, _last_event_id(self.scope))
        for event_id, name, data in replay:  # one write per event: the reader's budget is checked between them
            await self.write(event_bytes(name, data, str(event_id)))
            self.last_sent = event_id
        self.start_task(self._pump())
        self.start_task(self._heartbeat())
        expires_at = await database_sync_to_async(self._grant_expiry)(session, principal)
        if expires_at:
            self.start_task(self._end_at_grant_expiry(expires_at))

    @staticmethod
    def _member(session: dict[str, Any], principal: Principal) -> bool:
        return sessions.is_member(session, principal)

    @staticmethod
    def _grant_expiry(session: dict[str, Any], principal: Principal) -> int:
        """When the grant this reader's access rests on expires (0: the owner, or a grant that does not expire)."""
        if sessions.owner_member(session, principal):
            return 0
        return access.grant_expiry(session["device_id"], principal.uid)

    async def _end_at_grant_expiry(self, expires_at: int) -> None:
        """decisions.md H7: at the grant's expiry (not at the next heartbeat) the stream ends with `grant_expired`."""
        await asyncio.sleep(max(0.0, expires_at + 1 - time.time()))  # expired once its second has passed
        self.end("grant_expired")

    # Called by publishers in this process (relay.delivery); never blocks.
    def offer(self, event: StreamEvent) -> None:
        if self.cut:
            return
        if self.buffered_bytes() and self.over_budget(event.size):  # one event is always let through to an idle reader
            self.cut_slow_reader()
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            logger.info("slow session stream evicted", extra={"fields": {"session_id": self.session_id}})
            self._stop_soon()
            return
        self.queued_bytes += event.size

    def end(self, reason: str | None) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(("end", reason))
            return
        self._stop_soon()

    def _stop_soon(self) -> None:
        self.signal_self({"type": "relay.stream_stop"})

    async def _pump(self) -> None:
        """Write what is queued, in order: a burst (up to BATCH items already waiting) goes out in one write."""
        while True:
            items = [await self.queue.get()]
            while len(items) < self.BATCH and not self.queue.empty():
                items.append(self.queue.get_nowait())
            chunks: list[bytes] = []
            for item in items:
                if isinstance(item, StreamEvent):
                    self.queued_bytes -= item.size
                    if item.event_id > self.last_sent:
                        self.last_sent = item.event_id
                        chunks.append(_wire(item))
                elif item[0] == "comment":
                    chunks.append(comment_bytes(item[1] or ""))
                else:  # ("end", reason): what came before it is written, then the stream stops
                    reason = item[1]
                    if reason:
                        data = {"type": "session.ended", "session_id": self.session_id, "reason": reason}
                        chunks.append(event_bytes("session.ended", data))
                    if chunks:
                        await self.write(b"".join(chunks))
                    await self.channel_layer.send(self.channel_name, {"type": "relay.stream_stop"})
                    return
            if chunks:
                await self.write(b"".join(chunks))

    async def _heartbeat(self) -> None:
        """Every 15 s: a `:heartbeat`, and the access re-check (docs/protocol/relay.md §4.5)."""
        while True:
            await asyncio.sleep(settings.GATEWAY_SESSION_HEARTBEAT_SECONDS)
            await sessions_sweep_due()
            session = await store.get(self.session_id)
            if session is None:
                self.end(None)  # deleted: a silent close
                return
            if not await database_sync_to_async(self._member)(session, self.principal):
                with contextlib.suppress(asyncio.QueueFull):
                    self.queue.put_nowait(("comment", "authorization_revoked"))
                self.end(None)
                return
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(("comment", "heartbeat"))

    async def shares_access_ended(self, message: dict[str, Any]) -> None:
        """This user lost access to a device: if it is this session's, end with `session.ended` (R4)."""
        if message.get("device_id") == self.device_id:
            self.end(message.get("reason") or "grant_revoked")

    async def relay_devices_changed(self, message: dict[str, Any]) -> None:
        return  # device-list wakes are for the device events stream

    async def relay_stream_stop(self, message: dict[str, Any]) -> None:
        await self.end_stream()

    async def disconnect(self) -> None:
        if getattr(self, "session_id", None):
            await delivery.unsubscribe(self.session_id, self)
        await super().disconnect()


def _wire(event: StreamEvent) -> bytes:
    """The event's SSE bytes, rendered by the first stream that writes it and shared by the others."""
    wire = event.wire
    if wire is None:
        wire = event.wire = event_bytes(event.name, event.data, str(event.event_id))
    return wire


def _last_event_id(scope: dict[str, Any]) -> int:
    """An integer Last-Event-ID replays what came after it; absent or not an integer replays the whole backlog."""
    value = asgi_http.header(scope, b"last-event-id")
    if value is None:
        return 0
    text = value.strip()
    # decisions.md H9: only a decimal of at most 19 digits counts; anything else is as if absent.
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else 0
