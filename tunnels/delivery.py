"""The tunnels' delivery seam: every frame the gateway writes to a tunnel socket from outside that socket's own
consumer goes through here (webhook requests, deactivations after API changes or device deletion)."""

from __future__ import annotations

from typing import Any

from tunnels import services
from tunnels.registry import tunnels


async def send_request(route_id: str, connection_id: str, frame: dict[str, Any]) -> bool:
    """Write a `tunnel.request` to the socket holding the route if it still is connection `connection_id` (the one
    the request waits on); False otherwise or when the write failed."""
    holder = tunnels.holder(route_id)
    if holder is None or holder.connection_id != connection_id:
        return False
    return await holder.send_frame(frame)


async def route_deactivated(route_id: str, reason: str) -> None:
    """The route changed through the API: its tunnel forgets it and gets `tunnel.route_deactivated` with `reason`."""
    holder = tunnels.holder(route_id)
    if holder is not None:
        await holder.route_deactivated(route_id, reason)


async def routes_removed(route_ids: list[str]) -> None:
    """The routes no longer exist: drop their cached snapshots and their activations (`tunnel.route_deactivated`,
    reason `revoked`)."""
    for route_id in route_ids:
        await services.snapshot_forget(route_id)
        await route_deactivated(route_id, "revoked")


async def device_deleted(sender: Any, *, device_id: str, **kwargs: Any) -> None:
    """relay.signals.device_deleted: the device's routes went with it (database cascade), so no webhook may reach
    its tunnel any more."""
    await routes_removed(tunnels.routes_of_device(device_id))
