"""The inspector's endpoints (docs/protocol/webhooks.md §2): a route's records, one record, and replay.

The route checks come first, as for `PUT` (docs/protocol/tunnels.md §2.2): the id's grammar (400), then the route
exists and the caller owns it; a route of someone else answers `404 route_not_found` like a missing one, so the
inspector never tells whether another user's route exists.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from gateway_site import ratelimit
from gateway_site.auth import Principal
from tunnels import delivery, ingress, inspector, services
from tunnels.models import IntegrationRoute
from tunnels.services import RouteError

DEFAULT_LIMIT = 50
REPLAY_TOKEN_SEGMENT = "replay"  # noqa: S105 - stands for the route token in a replayed frame's path: the gateway keeps no token


def _route_owned(uid: str, route_id: str) -> bool:
    return IntegrationRoute.objects.filter(route_id=route_id, owner_uid=uid).exists()


async def owned_route(principal: Principal, route_id: str) -> str:
    services.validate_route_id(route_id)
    if not await sync_to_async(_route_owned)(principal.uid, route_id):
        raise RouteError(404, "route_not_found", "Route not found")
    return route_id


def limit_param(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= inspector.MAX_RECORDS):
        raise services.invalid(f"limit must be an integer between 1 and {inspector.MAX_RECORDS}")
    return int(raw)


async def recent(principal: Principal, route_id: str, raw_limit: str | None) -> list[dict[str, Any]]:
    await owned_route(principal, route_id)
    return await inspector.request_log().recent(route_id, limit_param(raw_limit))


async def one(principal: Principal, route_id: str, request_id: str) -> dict[str, Any]:
    await owned_route(principal, route_id)
    record = await inspector.request_log().get(route_id, request_id) if inspector.is_request_id(request_id) else None
    if record is None:
        raise RouteError(404, "request_not_found", "Request not found")
    return record


def _replay_scope(route_id: str, original: dict[str, Any], body: bytes) -> dict[str, Any]:
    """An ASGI scope for the recorded request: its method, query and headers, without the redacted ones (their
    values are not kept) and with the body's real length."""
    path = f"/integrations/{route_id}/{REPLAY_TOKEN_SEGMENT}"
    headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in original["headers"].items()
        if value != inspector.REDACTED and name not in ("content-length", "transfer-encoding")
    ]
    headers.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http",
        "method": original["method"],
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": original["query"].encode("latin-1"),
        "headers": headers,
    }


async def replay(principal: Principal, route_id: str, request_id: str) -> dict[str, Any]:
    """Send the recorded request through the route's tunnel again; the new record (docs/protocol/webhooks.md §2)."""
    original = await one(principal, route_id, request_id)
    body = inspector.replay_body(original)
    if body is None:
        raise RouteError(409, "replay_unavailable", "The request's body was not captured; it cannot be replayed")
    config = settings.GATEWAY
    window = config.ingress_rate_window_seconds
    route_ok = await ratelimit.hit(
        f"ingress:route:{route_id}", config.ingress_route_limit_per_window, window, scope="route"
    )
    if not route_ok or not await ratelimit.hit(
        "ingress:global", config.ingress_global_limit_per_window, window, scope="global"
    ):
        raise RouteError(429, "rate_limited", "The route's webhook rate limit is reached; retry later")
    route = services.ingress_route(await services.ingress_snapshot(route_id))
    target = await delivery.route_target(route_id) if route.active else None
    if target is None:
        raise RouteError(503, "tunnel_unavailable", "No tunnel is connected for this route")
    scope = _replay_scope(route_id, original, body)
    outcome = inspector.Outcome(body=body)

    async def capture(message: dict[str, Any]) -> None:
        outcome.see(message)

    outcome.answered = await ingress.deliver(capture, scope, route, target, body)
    record = inspector.Pending(
        method=original["method"],
        query=original["query"],
        headers=original["headers"],
        declared_size=len(body),
        outcome=outcome,
        capture_bodies=route.capture_bodies,
        replay_of=original["request_id"],
    ).build()
    await inspector.save(route_id, record)
    return record
