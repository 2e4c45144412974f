"""The agent WebSocket (docs/protocol/relay.md §5): admission, the greeting and transport tokens, presence, and
frames handed to relay.agent_frames. One socket per device; the newest replaces older ones."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from django.conf import settings

from gateway_site import asgi_http, metrics, nodes, safejson
from gateway_site.auth import Principal, check_scopes, principal_from_scope, refuse_websocket
from gateway_site.contained import ContainedWebsocketConsumer
from gateway_site.errors import ApiError, FrameworkError
from gateway_site.ids import next_connection_id
from gateway_site.lifecycle import CLOSE_SERVICE_RESTART, lifecycle
from relay import delivery, frames, handshake, services
from relay.agent_frames import session_agent_frame, session_agent_frames
from relay.frame_lane import FrameLane
from relay.registry import agents
from relay.stores import PRESENCE_RENEW_SECONDS, presence

logger = logging.getLogger("gateway.relay")

READ_DEADLINE_SECONDS = 60
DRAIN_SECONDS = 5.0  # how long a closing socket's queued frames may still take (Redis mode)
MAX_FRAME_BYTES = 4 * 1024 * 1024  # as the HTTP body cap; the production commands let servers take up to 8 MiB
CLOSE_REPLACED = (1000, "replaced_by_new_connection")
CLOSE_DISCONNECTED = (1008, "disconnected_by_operator")  # docs/protocol/relay.md §5.3


def transport_renewal_seconds(ttl: int) -> float:
    """When the next transport token is sent: half the lifetime of the current one (decisions.md H8)."""
    return ttl / 2


class AgentConsumer(ContainedWebsocketConsumer):
    """`/gateway/v1/agent/connect` (docs/protocol/relay.md §5): one socket per device; the newest replaces older
    ones."""

    device_id = ""
    owner_uid = ""
    connection_id = ""
    address = ""
    registered = False
    online = False  # presence was recorded for this connection
    lane: FrameLane[tuple[dict[str, Any], str, float]] | None = None  # Redis mode: session frames go through it

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
            await services.agent_socket_claim(admission)
        except ApiError as exc:
            logger.info("agent socket refused", extra={"fields": {"status": exc.status, "error": exc.message}})
            await refuse_websocket(self, exc)
            return
        self.device_id = admission.device_id
        self.owner_uid = admission.owner_uid
        self.audience = admission.audience or (self.owner_uid,)
        self.connection_id = next_connection_id("agt")
        self.address = nodes.address(self.connection_id)  # what presence records: unique across processes
        self.last_activity = time.monotonic()
        self.t_seq = 0
        self._send_lock = asyncio.Lock()
        if nodes.shared():
            self.lane = FrameLane(self._relay_frames, self._lane_failed)
        self.registered = True  # from here on, `_unregister` gives back the place the claim took
        await self.accept()
        lifecycle.track(self)
        previous = agents.register(self)
        await delivery.agent_replaced(self.device_id, previous)  # before presence names this socket
        await presence.mark_online(self.device_id, self.address, settings.GATEWAY.node_id)
        self.online = True
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
        # Hand this socket every handshake request still waiting (docs/protocol/relay.md §5.2 step 6, R5).
        await handshake.session_requests_flush(device_id=self.device_id, address=self.address)

    def _principal(self) -> Principal:
        error = self.scope.get("auth_error")
        if error is not None:
            raise error
        principal = self.scope.get("principal")
        return principal if principal is not None else principal_from_scope(self.scope)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.last_activity = time.monotonic()
        received = metrics.agent_frame_received()
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
        for reply in await self._handle(frame, received):
            await self.send_frame(reply)

    async def _handle(self, frame: dict[str, Any], received: float) -> list[dict[str, Any]]:
        kind = frames.frame_type(frame)
        if kind in frames.EXEMPT_TYPES:
            if kind == "ping":
                if self.lane is not None:  # answer after the frames sent before the ping, as one process does
                    await self.lane.drain(DRAIN_SECONDS)
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
        session_frame = frames.strip_transport(frame)
        if self.lane is not None:
            await self.lane.put((session_frame, kind, received))
            return []
        return await session_agent_frame(device_id=self.device_id, frame=session_frame, kind=kind, received=received)

    async def _relay_frames(self, batch: list[tuple[dict[str, Any], str, float]]) -> None:
        for reply in await session_agent_frames(device_id=self.device_id, frames=batch):
            await self.send_frame(reply)

    async def _lane_failed(self, exc: Exception) -> None:
        await self.handler_failed(exc, "websocket.receive")

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

    async def close_disconnected(self) -> None:
        """An operator disconnected the agent (docs/operations.md): the device goes offline; the agent may reconnect."""
        code, reason = CLOSE_DISCONNECTED
        await self._unregister(mark_offline=True)
        with contextlib.suppress(Exception):
            await self.close(code=code, reason=reason)

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
        """Presence and the owner's socket lease (docs/protocol/decisions.md H3) live as long as the socket does."""
        while True:
            await asyncio.sleep(PRESENCE_RENEW_SECONDS)
            try:
                if not await presence.renew(self.device_id, self.address):
                    return  # another connection holds the device now, with its presence and its lease
                limit = services.MAX_AGENT_SOCKETS_PER_OWNER
                await services.socket_renew("agent", self.owner_uid, self.device_id, limit)
            except Exception:  # the store failed this time: the socket lives on, the next round tries again
                logger.warning("agent presence renewal failed", extra={"fields": {"device_id": self.device_id}})

    async def _unregister(self, *, mark_offline: bool) -> None:
        if not self.registered:
            return
        self.registered = False
        if self.lane is not None:
            self.lane.stop()
        for task in getattr(self, "_tasks", []):
            if task is not asyncio.current_task():
                task.cancel()
        agents.unregister(self)
        if not mark_offline:
            return  # replaced: the device's new socket holds its presence and its place among the owner's sockets
        offline = self.online and await presence.mark_offline(self.device_id, self.address)
        if offline or not self.online:  # still the device's connection (or never recorded as one)
            await services.socket_release("agent", self.owner_uid, self.device_id)
        if offline:
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
        if self.lane is not None and self.registered:
            await self.lane.drain(DRAIN_SECONDS)  # the frames the agent sent before it went
        await self._unregister(mark_offline=True)
