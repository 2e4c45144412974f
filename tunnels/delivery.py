"""Telling live tunnels about routes that changed elsewhere (the API, device deletion)."""

from __future__ import annotations

from tunnels import services
from tunnels.registry import tunnels


async def routes_removed(route_ids: list[str]) -> None:
    """The routes no longer exist: drop their cached snapshots and their activations (`tunnel.route_deactivated`,
    reason `revoked`)."""
    for route_id in route_ids:
        services.forget_snapshot(route_id)
        holder = tunnels.holder(route_id)
        if holder is not None:
            await holder.route_deactivated(route_id, "revoked")  # type: ignore[attr-defined]
