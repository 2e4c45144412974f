"""The tunnels' delivery seam: every frame the gateway writes to a tunnel socket from outside that socket's own
consumer goes through here (webhook requests, deactivations after API changes or device deletion), and so does every
change of which socket holds a route (docs/architecture.md, "Delivery across processes").

A socket in this process is reached directly (tunnels.registry). With STATE_BACKEND=redis the route's binding is
shared (tunnels.stores), so ingress in any process finds the socket's process and asks it, through its inbox
(gateway_site.nodes), to write the `tunnel.request`. That process remembers who waits for the request, hands the
socket's `tunnel.response` back to the waiting process, and tells it at once when the socket goes, so the webhook
fails with 503 as it does in one process (docs/protocol/tunnels.md §4).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any

from gateway_site import nodes
from gateway_site.nodes import inbox
from tunnels import buffer, services
from tunnels.registry import Inflight, TunnelSocket, forwarded, inflight, tunnels
from tunnels.stores import RedisRouteBindings, RouteBinding

logger = logging.getLogger("gateway.tunnels")

TUNNEL_REQUEST = "tunnels.request"
TUNNEL_RESPONSE = "tunnels.response"
TUNNEL_LOST = "tunnels.lost"
ROUTE_DEACTIVATE = "tunnels.route_deactivate"
DEVICE_DELETED = "tunnels.device_deleted"


@functools.cache
def _bindings() -> RedisRouteBindings:
    return RedisRouteBindings()


def _binding(socket: TunnelSocket) -> RouteBinding:
    return RouteBinding(inbox.node_id, socket.connection_id, socket.device_id)


# -- which socket holds a route ------------------------------------------------------------------------------------


async def bind(route_id: str, socket: TunnelSocket) -> TunnelSocket | None:
    """Route `route_id` to `socket`; returns this process's socket that held it before. A socket in another process
    that held it gets `tunnel.route_deactivated` with reason `superseded`."""
    previous = tunnels.bind(route_id, socket)
    if nodes.shared():
        replaced = await _bindings().take(route_id, _binding(socket))
        if replaced is not None and nodes.elsewhere(replaced.node_id):
            message = {"route_id": route_id, "connection_id": replaced.connection_id, "reason": "superseded"}
            await inbox.send(replaced.node_id, {"type": ROUTE_DEACTIVATE, **message})
    return previous


async def unbind(route_id: str, socket: TunnelSocket) -> bool:
    """Forget that `socket` holds the route; False when it did not."""
    if tunnels.unbind(route_id, socket) is None:
        return False
    if nodes.shared():
        await _bindings().release(route_id, _binding(socket))
    return True


async def tunnel_gone(socket: TunnelSocket, route_ids: list[str]) -> None:
    """The socket left (it is already out of the registry): requests sent down it fail now instead of at their
    deadline, here and in the processes whose ingress waits for them, and its routes are free again."""
    inflight.fail_connection(socket.connection_id)
    if not nodes.shared():
        return
    for origin, request_ids in forwarded.take_connection(socket.connection_id).items():
        await inbox.send(origin, {"type": TUNNEL_LOST, "request_ids": request_ids})
    for route_id in route_ids:
        with contextlib.suppress(Exception):  # a binding left behind is taken over by the next activation
            await _bindings().release(route_id, _binding(socket))


# -- webhook requests and their answers ------------------------------------------------------------------------------


async def route_target(route_id: str) -> str | None:
    """Where a webhook for the route goes: the connection id of this process's socket holding it, else (Redis mode)
    the address of the socket the shared binding names; None when no socket holds it."""
    holder = tunnels.holder(route_id)
    if holder is not None:
        return holder.connection_id
    if not nodes.shared():
        return None
    binding = await _bindings().get(route_id)
    if binding is None or not nodes.elsewhere(binding.node_id):
        return None
    return f"{binding.connection_id}@{binding.node_id}"


async def send_request(route_id: str, target: str, frame: dict[str, Any]) -> bool:
    """Write a `tunnel.request` to the socket at `target` (route_target) if it still holds the route; False otherwise
    or when the write failed."""
    connection_id, node_id = nodes.split(target)
    if nodes.elsewhere(node_id):
        message = {"type": TUNNEL_REQUEST, "route_id": route_id, "connection_id": connection_id, "frame": frame}
        return await inbox.request(node_id, message) is True
    holder = tunnels.holder(route_id)
    if holder is None or holder.connection_id != connection_id:
        return False
    return await holder.send_frame(frame)


def waiting_device(request_id: str) -> str | None:
    """The device whose tunnel a waiting request was sent to (None: unknown, or answered already)."""
    entry = inflight.get(request_id)
    if entry is not None:
        return entry.device_id
    remote = forwarded.get(request_id)
    return remote.device_id if remote is not None else None


async def answer(request_id: str, frame: dict[str, Any]) -> None:
    """Hand a `tunnel.response` to the ingress waiting for it, in this process or the one it came from."""
    entry = inflight.pop(request_id)
    if entry is not None:
        if not entry.future.done():
            entry.future.set_result(frame)
        return
    remote = forwarded.pop(request_id)
    if remote is not None:
        await inbox.send(remote.origin, {"type": TUNNEL_RESPONSE, "request_id": request_id, "frame": frame})


# -- route changes -------------------------------------------------------------------------------------------------


async def route_deactivated(route_id: str, reason: str) -> None:
    """The route changed through the API: its tunnel forgets it and gets `tunnel.route_deactivated` with `reason`."""
    holder = tunnels.holder(route_id)
    if holder is not None:
        await holder.route_deactivated(route_id, reason)
        return
    if nodes.shared():
        binding = await _bindings().get(route_id)
        if binding is not None and nodes.elsewhere(binding.node_id):
            message = {"route_id": route_id, "connection_id": binding.connection_id, "reason": reason}
            await inbox.send(binding.node_id, {"type": ROUTE_DEACTIVATE, **message})


async def routes_removed(route_ids: list[str]) -> None:
    """The routes no longer exist: drop their cached snapshots and their activations (`tunnel.route_deactivated`,
    reason `revoked`)."""
    for route_id in route_ids:
        await services.snapshot_forget(route_id)
        await route_deactivated(route_id, "revoked")
        await buffer.store().drop_route(route_id)  # its stored webhooks go with it (docs/protocol/webhooks.md §3)


async def device_deleted(sender: Any, *, device_id: str, **kwargs: Any) -> None:
    """relay.signals.device_deleted: the device's routes went with it (database cascade), so no webhook may reach
    its tunnel any more, whichever process holds it."""
    await routes_removed(tunnels.routes_of_device(device_id))
    if nodes.shared():
        await inbox.broadcast({"type": DEVICE_DELETED, "device_id": device_id})


# -- what other processes ask of this one (Redis mode) ---------------------------------------------------------------


async def _on_request(message: dict[str, Any]) -> bool:
    holder = tunnels.holder(str(message.get("route_id")))
    frame, origin = message.get("frame"), str(message.get("origin"))
    if holder is None or holder.connection_id != message.get("connection_id") or not isinstance(frame, dict):
        return False
    request_id = str(frame.get("request_id"))
    if not forwarded.add(request_id, origin, holder.device_id, holder.connection_id):
        return False
    if await holder.send_frame(frame):
        return True
    forwarded.pop(request_id)
    return False


def _waiting_from(request_id: str, origin: str) -> Inflight | None:
    """This process's waiting request `request_id`, if it was sent to process `origin`."""
    entry = inflight.get(request_id)
    if entry is None or nodes.split(entry.connection_id)[1] != origin:
        return None
    return entry


async def _on_response(message: dict[str, Any]) -> None:
    request_id, frame = str(message.get("request_id")), message.get("frame")
    entry = _waiting_from(request_id, str(message.get("origin")))
    if entry is not None and isinstance(frame, dict):
        inflight.pop(request_id)
        if not entry.future.done():
            entry.future.set_result(frame)


async def _on_lost(message: dict[str, Any]) -> None:
    request_ids = message.get("request_ids")
    for request_id in request_ids if isinstance(request_ids, list) else []:
        entry = _waiting_from(str(request_id), str(message.get("origin")))
        if entry is not None:
            inflight.pop(str(request_id))
            if not entry.future.done():
                entry.future.set_exception(ConnectionError("tunnel closed"))


async def _on_route_deactivate(message: dict[str, Any]) -> None:
    route_id = str(message.get("route_id"))
    holder = tunnels.holder(route_id)
    if holder is not None and holder.connection_id == message.get("connection_id"):
        await holder.route_deactivated(route_id, str(message.get("reason")))


async def _on_device_deleted(message: dict[str, Any]) -> None:
    await routes_removed(tunnels.routes_of_device(str(message.get("device_id"))))


def listen() -> None:
    """Serve the tunnels' messages from other processes (called once, when the app loads)."""
    inbox.handle(TUNNEL_REQUEST, _on_request)
    inbox.handle(TUNNEL_RESPONSE, _on_response, ordered=True)
    inbox.handle(TUNNEL_LOST, _on_lost, ordered=True)
    inbox.handle(ROUTE_DEACTIVATE, _on_route_deactivate)
    inbox.handle(DEVICE_DELETED, _on_device_deleted)
