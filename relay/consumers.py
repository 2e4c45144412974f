"""Long-lived relay connections: the agent WebSocket and the device events stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from gateway_site import asgi_http, safejson
from gateway_site.auth import Principal, check_scopes, principal_from_scope, refuse_websocket
from gateway_site.contained import ContainedWebsocketConsumer
from gateway_site.errors import ApiError, Forbidden, FrameworkError
from gateway_site.lifecycle import CLOSE_SERVICE_RESTART, lifecycle
from gateway_site.sse import SseConsumer, comment_bytes, event_bytes
from relay import delivery, frames, services, sessions
from relay.groups import device_group, user_group
from relay.registry import agents, next_connection_id, streams
from relay.stores import PRESENCE_RENEW_SECONDS, presence
from relay.transport import rfc3339
from shares import permissions

logger = logging.getLogger("gateway.relay")

READ_DEADLINE_SECONDS = 60
MAX_FRAME_BYTES = 4 * 1024 * 1024  # as the HTTP body cap; the production commands let servers take up to 8 MiB
CLOSE_REPLACED = (1000, "replaced_by_new_connection")


def transport_renewal_seconds(ttl: int) -> float:
    """When the next transport token is sent: half the lifetime of the current one (decisions.md H8)."""
    return ttl / 2


class AgentConsumer(ContainedWebsocketConsumer):
    """`/gateway/v1/agent/connect` (docs/protocol/relay.md §5): one socket per device; the newest replaces older
    ones."""

    device_id = ""
    owner_uid = ""
    connection_id = ""
    registered = False

    async def connect(self) -> None:
        try:
            if lifecycle.shutting_down:
                raise FrameworkError(503)
            principal = self._principal()
            check_scopes(principal, "device")  # docs/protocol/decisions.md O2
            admission = await database_sync_to_async(services.agent_admit)(
                principal=principal,
                device_id=asgi_http.query_param(self.scope, "device_id"),
                x_device_id=asgi_http.header(self.scope, b"x-device-id"),
            )
        except ApiError as exc:
            logger.info("agent socket refused", extra={"fields": {"status": exc.status, "error": exc.message}})
            await refuse_websocket(self, exc)
            return
        self.device_id = admission.device_id
        self.owner_uid = admission.owner_uid
        self.audience = admission.audience or (self.owner_uid,)
        self.connection_id = next_connection_id("agt")
        self.last_activity = time.monotonic()
        self.t_seq = 0
        self._send_lock = asyncio.Lock()
        await self.accept()
        lifecycle.track(self)
        previous = agents.register(self)
        self.registered = True
        if agents.count_for_owner(self.owner_uid) > services.MAX_AGENT_SOCKETS_PER_OWNER:  # concurrent connects
            await self._unregister(mark_offline=False)
            await self.close(code=1008, reason="too_many_connections")
            return
        if previous is not None:
            await previous.close_replaced()
        await self.channel_layer.group_add(device_group(self.device_id), self.channel_name)
        presence.mark_online(self.device_id, self.connection_id, settings.GATEWAY.node_id)
        logger.info(
            "agent connected", extra={"fields": {"device_id": self.device_id, "connection": self.connection_id}}
        )
        sent = await self.send_frame(frames.gateway_connected(self.device_id, time.time()))
        if not (sent and await self._send_transport_init()):
            await self.close()
            return
        self._tasks = [
            asyncio.ensure_future(self._watchdog()),
            asyncio.ensure_future(self._renew_presence()),
            asyncio.ensure_future(self._renew_transport()),
        ]
        await self._announce("online")
        await self._flush_pending()

    async def _flush_pending(self) -> None:
        """Hand every waiting handshake request to this new socket (docs/protocol/relay.md §5.2 step 6,
        docs/protocol/decisions.md R5)."""
        for session in sessions.pending_sessions(self.device_id):
            if not sessions.claim_request_send(session["session_id"], self.connection_id):
                continue
            if await self.send_frame(sessions.handshake_request_frame(session)):
                sessions.record_request_sent(session["session_id"], self.connection_id)
            else:
                sessions.record_request_failed(session["session_id"], "agent_unavailable")
                return

    def _principal(self) -> Principal:
        error = self.scope.get("auth_error")
        if error is not None:
            raise error
        principal = self.scope.get("principal")
        return principal if principal is not None else principal_from_scope(self.scope)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.last_activity = time.monotonic()
        raw = text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
        if len(raw) > MAX_FRAME_BYTES or (len(raw) > MAX_FRAME_BYTES // 4 and len(raw.encode()) > MAX_FRAME_BYTES):
            await self.close(code=1009)
            return
        try:
            frame = safejson.loads(raw)
        except safejson.InvalidJson:
            frame = None
        if not isinstance(frame, dict):
            await self.send_frame({"type": "agent.error", "error": "invalid_json"})
            return
        for reply in await self._handle(frame):
            await self.send_frame(reply)

    async def _handle(self, frame: dict[str, Any]) -> list[dict[str, Any]]:
        kind = frames.frame_type(frame)
        if kind in frames.EXEMPT_TYPES:
            if kind == "ping":
                return [frames.heartbeat(self.device_id, time.time())]
            return []
        if kind == "agent.error" and not frames.session_id_of(frame):
            # The public agent answers frames it does not know (gateway.connected, transport.init) this way.
            logger.debug("agent.error from agent", extra={"fields": {"device_id": self.device_id}})
            return []
        try:
            self.t_seq = frames.check_transport(
                frame,
                secret=settings.GATEWAY.transport_token_secret,
                mode=settings.GATEWAY.transport_token_mode,
                device_id=self.device_id,
                connection_id=self.connection_id,
                last_t_seq=self.t_seq,
                now=time.time(),
            )
        except frames.TransportError as exc:
            logger.info("agent frame dropped", extra={"fields": {"device_id": self.device_id, "violation": str(exc)}})
            return []
        frame = frames.strip_transport(frame)
        identity_key = None
        if kind == "session.handshake.ack":
            identity_key = await database_sync_to_async(sessions.device_identity_key)(self.device_id)
        outcome = sessions.agent_frame(self.device_id, frame, kind, identity_key)
        if outcome.event is not None:
            session_id, name, data = outcome.event
            delivery.publish_session_event(session_id, sessions.store_event(outcome.event), name, data)
        return outcome.replies

    async def send_frame(self, frame: dict[str, Any]) -> bool:
        """Write one JSON frame; False if the socket is gone or the write fails (the socket is then dropped)."""
        try:
            async with self._send_lock:
                await asyncio.wait_for(self.send(text_data=json.dumps(frame, separators=(",", ":"))), timeout=10)
        except Exception:  # any write failure drops the socket (docs/protocol/relay.md §5.2)
            logger.info("agent write failed", extra={"fields": {"device_id": self.device_id}})
            await self._drop()
            return False
        return True

    async def close_replaced(self) -> None:
        code, reason = CLOSE_REPLACED
        await self._unregister(mark_offline=False)
        with contextlib.suppress(Exception):
            await self.close(code=code, reason=reason)

    async def close_deleted(self) -> None:
        await self._unregister(mark_offline=True)
        with contextlib.suppress(Exception):
            await self.close(code=1000, reason="device_deleted")

    async def _drop(self) -> None:
        await self._unregister(mark_offline=True)
        with contextlib.suppress(Exception):
            await self.close()

    async def _watchdog(self) -> None:
        """The read deadline: 60 s without any inbound message closes the socket."""
        while True:
            remaining = READ_DEADLINE_SECONDS - (time.monotonic() - self.last_activity)
            if remaining <= 0:
                logger.info("agent read deadline", extra={"fields": {"device_id": self.device_id}})
                await self._drop()
                return
            await asyncio.sleep(remaining)

    async def _send_transport_init(self) -> bool:
        config = settings.GATEWAY
        return await self.send_frame(
            frames.transport_init(
                secret=config.transport_token_secret,
                device_id=self.device_id,
                connection_id=self.connection_id,
                ttl=config.transport_token_ttl_seconds,
                now=time.time(),
            )
        )

    async def _renew_transport(self) -> None:
        """decisions.md H8: a fresh transport token at every TTL/2, for as long as the socket lives, so an agent in
        `required` mode never sends with an expired one."""
        while True:
            await asyncio.sleep(transport_renewal_seconds(settings.GATEWAY.transport_token_ttl_seconds))
            if not await self._send_transport_init():
                return

    async def _renew_presence(self) -> None:
        while True:
            await asyncio.sleep(PRESENCE_RENEW_SECONDS)
            if not presence.renew(self.device_id, self.connection_id):
                return

    async def _unregister(self, *, mark_offline: bool) -> None:
        if not self.registered:
            return
        self.registered = False
        for task in getattr(self, "_tasks", []):
            if task is not asyncio.current_task():
                task.cancel()
        agents.unregister(self)
        with contextlib.suppress(Exception):
            await self.channel_layer.group_discard(device_group(self.device_id), self.channel_name)
        if mark_offline and presence.mark_offline(self.device_id, self.connection_id):
            logger.info("agent offline", extra={"fields": {"device_id": self.device_id}})
            await self._announce("offline")

    async def _announce(self, reason: str) -> None:
        """Wake the device streams of everyone who could see this device when the socket connected."""
        await delivery.notify_users(self.audience, device_id=self.device_id, reason=reason)

    async def gateway_shutdown(self, message: dict[str, Any]) -> None:
        """The process is stopping (gateway_site.lifecycle): close with 1012 so the agent reconnects."""
        await self._unregister(mark_offline=True)
        with contextlib.suppress(Exception):
            await self.close(code=CLOSE_SERVICE_RESTART, reason="service_restart")

    async def disconnect(self, code: int) -> None:
        lifecycle.untrack(self)
        await self._unregister(mark_offline=True)


class DeviceEventsConsumer(SseConsumer):
    """`GET /gateway/v1/devices/events` (docs/protocol/devices-and-shares.md §7): snapshot, then changes at every
    wake."""

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
            statuses, next_expiry = await database_sync_to_async(services.device_view)(principal=self.principal)
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
    evicted and should reconnect with Last-Event-ID.
    """

    QUEUE_SIZE = 64

    async def open_stream(self) -> None:
        principal = principal_from_scope(self.scope)
        session_id = sessions.session_id_param(self.scope["url_route"]["kwargs"]["session_id"])
        session = sessions.load(session_id)
        if not await database_sync_to_async(self._member)(session, principal):
            raise Forbidden("forbidden")
        self.principal = principal
        self.uid = principal.uid
        self.session_id = session_id
        self.device_id = session["device_id"]
        self.queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue(self.QUEUE_SIZE)
        self.last_sent = 0
        streams.add(session_id, self)
        await self.join_group(user_group(principal.uid))
        await self.start_stream(principal.uid)
        await self.write(comment_bytes("connected"))
        replay = sessions.sessions.events_after(session_id, _last_event_id(self.scope))
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
        grant = permissions.active_grant(session["device_id"], principal.uid)
        return grant.grant_expires_at if grant is not None and grant.grant_expires_at > 0 else 0

    async def _end_at_grant_expiry(self, expires_at: int) -> None:
        """decisions.md H7: at the grant's expiry (not at the next heartbeat) the stream ends with `grant_expired`."""
        await asyncio.sleep(max(0.0, expires_at + 1 - time.time()))  # expired once its second has passed
        self.end("grant_expired")

    # Called by publishers in this process (relay.delivery); never blocks.
    def offer(self, event_id: int, name: str, data: str) -> None:
        if self.cut:
            return
        size = len(name) + len(data)
        if self.buffered_bytes() and self.over_budget(size):  # one event is always let through to an idle reader
            self.cut_slow_reader()
            return
        try:
            self.queue.put_nowait(("event", event_id, name, data))
        except asyncio.QueueFull:
            logger.info("slow session stream evicted", extra={"fields": {"session_id": self.session_id}})
            self._stop_soon()
            return
        self.queued_bytes += size

    def end(self, reason: str | None) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(("end", reason))
            return
        self._stop_soon()

    def _stop_soon(self) -> None:
        asyncio.ensure_future(self.channel_layer.send(self.channel_name, {"type": "relay.stream_stop"}))

    async def _pump(self) -> None:
        while True:
            item = await self.queue.get()
            if item[0] == "event":
                _, event_id, name, data = item
                self.queued_bytes -= len(name) + len(data)
                if event_id > self.last_sent:
                    self.last_sent = event_id
                    await self.write(event_bytes(name, data, str(event_id)))
            elif item[0] == "comment":
                await self.write(comment_bytes(item[1]))
            elif item[0] == "end":
                reason = item[1]
                if reason:
                    data = {"type": "session.ended", "session_id": self.session_id, "reason": reason}
                    await self.write(event_bytes("session.ended", data))
                await self.channel_layer.send(self.channel_name, {"type": "relay.stream_stop"})
                return

    async def _heartbeat(self) -> None:
        """Every 15 s: a `:heartbeat`, and the access re-check (docs/protocol/relay.md §4.5)."""
        while True:
            await asyncio.sleep(settings.GATEWAY_SESSION_HEARTBEAT_SECONDS)
            for swept in sessions.sweep_if_due():
                delivery.end_session_streams(swept["session_id"], "expired")
            session = sessions.sessions.get(self.session_id)
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
            streams.remove(self.session_id, self)
        await super().disconnect()


def _last_event_id(scope: dict[str, Any]) -> int:
    """An integer Last-Event-ID replays what came after it; absent or not an integer replays the whole backlog."""
    value = asgi_http.header(scope, b"last-event-id")
    if value is None:
        return 0
    text = value.strip()
    # decisions.md H9: only a decimal of at most 19 digits counts; anything else is as if absent.
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else 0
