"""Device endpoints: parse, call a relay service, render."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse

from gateway_site.auth import check_scopes
from gateway_site.errors import FrameworkError, json_response, method_not_allowed
from gateway_site.jsonbody import json_object
from gateway_site.views import api_view
from relay import delivery, services, sessions
from tunnels import delivery as tunnel_delivery
from tunnels import services as tunnel_services


@api_view("GET", "PUT")
def identity_key(request: HttpRequest, device_id: str) -> HttpResponse:
    device_id = services.validate_device_path(device_id)
    if request.method == "PUT":
        check_scopes(request.principal, "device")  # type: ignore[attr-defined]  # docs/protocol/decisions.md O2
        body = json_object(request, "invalid request body")
        services.device_identity_put(principal=request.principal, device_id=device_id, body=body)  # type: ignore[attr-defined]
        return HttpResponse(status=204)
    return json_response(services.device_identity_get(principal=request.principal, device_id=device_id))  # type: ignore[attr-defined]


@api_view("GET")
def device_list(request: HttpRequest) -> HttpResponse:
    return json_response({"devices": services.device_list(principal=request.principal)})  # type: ignore[attr-defined]


@api_view("DELETE")
def device_detail(request: HttpRequest, device_id: str) -> HttpResponse:
    device_id = services.validate_device_path(device_id)
    routes = tunnel_services.route_ids_of_device(device_id)
    affected = services.device_delete(principal=request.principal, device_id=device_id)  # type: ignore[attr-defined]
    async_to_sync(delivery.close_device)(device_id)
    # Its routes went with it (cascade): no webhook may reach the device's tunnel any more.
    async_to_sync(tunnel_delivery.routes_removed)(routes)
    # Subscribers get `session.ended` (device_deleted) before the sessions themselves go (docs/protocol/decisions.md D1,
    # R4).
    for session_id in sessions.sessions_of_device_delete(device_id):
        async_to_sync(_end_streams)(session_id)
    async_to_sync(delivery.access_ended)(uids=affected, device_id=device_id, reason="device_deleted")
    return HttpResponse(status=204)


async def _end_streams(session_id: str) -> None:
    delivery.end_session_streams(session_id, "device_deleted")


@api_view("GET")
def agent_connect_http(request: HttpRequest) -> HttpResponse:
    """A plain HTTP request to the agent WebSocket endpoint: the same checks as the upgrade, then 426."""
    check_scopes(request.principal, "device")  # type: ignore[attr-defined]
    services.agent_admit(
        principal=request.principal,  # type: ignore[attr-defined]
        device_id=request.GET.get("device_id"),
        x_device_id=request.headers.get("X-Device-Id"),
    )
    raise FrameworkError(426)


@api_view("GET")
def device_events_non_get(request: HttpRequest) -> HttpResponse:
    """GET of the events stream is served by relay.consumers.DeviceEventsConsumer; other methods land here."""
    raise method_not_allowed(["GET"])  # only HEAD gets here: a stream has nothing to show without its body
