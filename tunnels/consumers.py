"""The tunnel WebSocket (docs/protocol/tunnels.md §3): activates routes and answers the webhook requests sent down to
it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from typing import Any

from channels.db import database_sync_to_async

from gateway_site import asgi_http, safejson
from gateway_site.auth import Principal, check_scopes, principal_from_scope, refuse_websocket
from gateway_site.contained import ContainedWebsocketConsumer
from gateway_site.errors import ApiError, FrameworkError, TooManyRequests
from gateway_site.ids import next_connection_id
from gateway_site.lifecycle import CLOSE_SERVICE_RESTART, lifecycle
from gateway_site.timefmt import rfc3339
from relay import services as relay_services
from tunnels import buffering, delivery, services
from tunnels.registry import tunnels

logger = logging.getLogger("gateway.tunnels")

MAX_TUNNELS_PER_OWNER = 50
LEASE_RENEW_SECONDS = 20  # well within relay.services.SOCKET_LEASE_SECONDS


def tunnel_admit(*, principal: Principal, device_id: str | None) -> str:
    """Pre-upgrade checks 2-5 (database: the device). Check 6, the owner's number of tunnels, is `tunnel_claim`."""
    return relay_services.socket_device(principal=principal, device_id=device_id).device_id


async def tunnel_check(owner_uid: str, device_id: str) -> None:
    """Check 6 for a plain HTTP request to the endpoint: 429 when the owner could not connect this tunnel now."""
    if not await relay_services.socket_room("tunnel", owner_uid, device_id, MAX_TUNNELS_PER_OWNER):
        raise TooManyRequests("too many tunnel connections")


async def tunnel_claim(owner_uid: str, device_id: str) -> None:
    """Check 6 before the upgrade, atomically across processes (docs/protocol/decisions.md H3): the device takes its
    place among its owner's tunnel sockets (relay.services socket leases), or 429."""
    if not await relay_services.socket_claim("tunnel", owner_uid, device_id, MAX_TUNNELS_PER_OWNER):
        raise TooManyRequests("too many tunnel connections")


def _route_ids(frame: dict[str, Any]) -> list[str]:
    routes = frame.get("routes")
    if not isinstance(routes, list):
        return []
    ids = []
    for item in routes:
        value = item.get("route_id") if isinstance(item, dict) else item
        if isinstance(value, str) and value.strip():
            ids.append(value.strip())
    return ids


class TunnelConsumer(ContainedWebsocketConsumer):
    device_id = ""
    owner_uid = ""
    connection_id = ""
    registered = False

    async def connect(self) -> None:
        try:
            if lifecycle.shutting_down:
                raise FrameworkError(503)
            error = self.scope.get("auth_error")
            if error is not None:
                raise error
            principal = self.scope.get("principal") or principal_from_scope(self.scope)
            check_scopes(principal, "device")  # docs/protocol/decisions.md O2
            device_id = await database_sync_to_async(tunnel_admit)(
                principal=principal, device_id=asgi_http.query_param(self.scope, "device_id")
            )
            await tunnel_claim(principal.uid, device_id)
        except ApiError as exc:
            await refuse_websocket(self, exc)
            return
        self.device_id = device_id
        self.owner_uid = principal.uid
        self.connection_id = next_connection_id("tun")
        self.routes: set[str] = set()
        self._send_lock = asyncio.Lock()
        self.registered = True  # from here on, `_unregister` gives back the place the claim took
        self._renewal = asyncio.ensure_future(self._renew_lease())
        await self.accept()
        lifecycle.track(self)
        previous = tunnels.register(self)
        if previous is not None:
            await previous.close_replaced()
        # Liveness is the ASGI server's WebSocket ping/pong (Daphne and uvicorn ping every 20 s): tunnel clients
        # answer pings and send their own, but pings never reach the application, so an idle tunnel must not be
        # cut by an application-level read deadline.
        await self.send_frame({"type": "tunnel.connected", "device_id": self.device_id, "at": rfc3339(time.time())})

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        raw = text_data if text_data is not None else (bytes_data or b"").decode("utf-8", "replace")
        try:
            frame = safejson.loads(raw)
        except safejson.InvalidJson:
            frame = None
        if not isinstance(frame, dict) or not isinstance(frame.get("type", ""), str):
            await self.send_frame({"type": "tunnel.error", "error": "invalid_json"})
            return
        kind = frame.get("type")
        if kind == "tunnel.activate":
            result = await self._activate(frame)
            await self.send_frame(result)
            for item in result["results"]:  # stored webhooks go out after the result (docs/protocol/webhooks.md §3)
                if item["status"] == "active":
                    buffering.kick(item["route_id"])
        elif kind == "tunnel.deactivate":
            await self.send_frame(await self._deactivate(frame))
        elif kind == "tunnel.response":
            await self._response(frame)
        elif kind in ("ping", "heartbeat"):
            return
        else:
            await self.send_frame({"type": "tunnel.error", "error": "unknown_frame_type"})

    async def _activate(self, frame: dict[str, Any]) -> dict[str, Any]:
        request_id = frame.get("request_id") if isinstance(frame.get("request_id"), str) else ""
        results = []
        for route_id in _route_ids(frame):
            rejection = await database_sync_to_async(services.activation_check)(
                route_id=route_id, owner_uid=self.owner_uid, device_id=self.device_id
            )
            if rejection is not None:
                results.append(rejection)
                continue
            previous = await delivery.bind(route_id, self)
            await database_sync_to_async(services.set_status)(route_id, "active")
            if previous is not None:
                await previous.send_frame(_deactivated(route_id, "superseded"))
            results.append({"route_id": route_id, "status": "active", "activation": "clean"})
        return {
            "type": "tunnel.activate.result",
            "request_id": request_id or f"act_{secrets.token_hex(4)}",
            "results": results,
        }

    async def _deactivate(self, frame: dict[str, Any]) -> dict[str, Any]:
        request_id = frame.get("request_id") if isinstance(frame.get("request_id"), str) else ""
        results = []
        for route_id in _route_ids(frame):
            if not await delivery.unbind(route_id, self):
                error = {"code": "route_not_found", "message": "Route not active on this tunnel"}
                results.append({"route_id": route_id, "status": "rejected", "error": error})
                continue
            await database_sync_to_async(services.set_status)(route_id, "inactive")
            results.append({"route_id": route_id, "status": "inactive"})
        return {
            "type": "tunnel.deactivate.result",
            "request_id": request_id or f"deact_{secrets.token_hex(4)}",
            "results": results,
        }

    async def _response(self, frame: dict[str, Any]) -> None:
        request_id = frame.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            return
        device_id = delivery.waiting_device(request_id)
        if device_id is None:
            return  # unknown or already answered (a late answer after a 504)
        if device_id != self.device_id:
            await self.send_frame(
                {
                    "type": "tunnel.error",
                    "error": "response_ownership_mismatch",
                    "request_id": request_id,
                    "message": "You do not own this inflight request",
                }
            )
            return
        await delivery.answer(request_id, frame)

    async def send_frame(self, frame: dict[str, Any]) -> bool:
        try:
            async with self._send_lock:
                await asyncio.wait_for(self.send(text_data=json.dumps(frame, separators=(",", ":"))), timeout=10)
        except Exception:
            await self._drop()
            return False
        return True

    async def route_deactivated(self, route_id: str, reason: str) -> None:
        """The route was updated or deleted through the API: forget it and tell the tunnel client."""
        if await delivery.unbind(route_id, self):
            await self.send_frame(_deactivated(route_id, reason))

    async def _renew_lease(self) -> None:
        """The owner's tunnel lease lives as long as the socket does (docs/protocol/decisions.md H3)."""
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            try:
                await relay_services.socket_renew("tunnel", self.owner_uid, self.device_id, MAX_TUNNELS_PER_OWNER)
            except Exception:  # the store failed this time: the socket lives on, the next round tries again
                logger.warning("tunnel lease renewal failed", extra={"fields": {"device_id": self.device_id}})

    async def close_replaced(self) -> None:
        await self._unregister(replaced=True)
        with contextlib.suppress(Exception):
            await self.close(code=1000, reason="replaced_by_new_connection")

    async def _drop(self) -> None:
        await self._unregister()
        with contextlib.suppress(Exception):
            await self.close()

    async def _unregister(self, *, replaced: bool = False) -> None:
        if not self.registered:
            return
        self.registered = False
        if self._renewal is not asyncio.current_task():
            self._renewal.cancel()
        held = list(self.routes)
        tunnels.unregister(self)
        await delivery.tunnel_gone(self, held)
        with contextlib.suppress(Exception):
            await database_sync_to_async(services.routes_provisioned)(held)
        if not replaced:  # a replacing socket keeps the device's place among the owner's tunnels
            await relay_services.socket_release("tunnel", self.owner_uid, self.device_id)

    async def gateway_shutdown(self, message: dict[str, Any]) -> None:
        """The process is stopping (gateway_site.lifecycle): close with 1012 so the tunnel client reconnects."""
        await self._unregister()
        with contextlib.suppress(Exception):
            await self.close(code=CLOSE_SERVICE_RESTART, reason="service_restart")

    async def disconnect(self, code: int) -> None:
        lifecycle.untrack(self)
        await self._unregister()


def _deactivated(route_id: str, reason: str) -> dict[str, Any]:
    return {"type": "tunnel.route_deactivated", "route_id": route_id, "reason": reason, "at": rfc3339(time.time())}
