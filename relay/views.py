"""Device endpoints: parse, call a relay service, render."""

from __future__ import annotations

from asgiref.sync import async_to_sync, sync_to_async
from django.http import HttpResponse

from gateway_site.auth import check_scopes
from gateway_site.errors import FrameworkError, json_response, method_not_allowed
from gateway_site.jsonbody import json_object
from gateway_site.requests import ApiRequest
from gateway_site.views import api_view
from relay import services, signals
from relay.models import Device


@api_view("GET", "PUT")
def identity_key(request: ApiRequest, device_id: str) -> HttpResponse:
    device_id = services.validate_device_path(device_id)
    if request.method == "PUT":
        check_scopes(request.principal, "device")  # docs/protocol/decisions.md O2
        body = json_object(request, "invalid request body")
        services.device_identity_put(principal=request.principal, device_id=device_id, body=body)
        return HttpResponse(status=204)
    return json_response(services.device_identity_get(principal=request.principal, device_id=device_id))


@api_view("GET")
async def device_list(request: ApiRequest) -> HttpResponse:
    return json_response({"devices": await services.device_list(principal=request.principal)})


@api_view("DELETE")
def device_detail(request: ApiRequest, device_id: str) -> HttpResponse:
    device_id = services.validate_device_path(device_id)
    affected = services.device_delete(principal=request.principal, device_id=device_id)
    # Every app with live state about the device acts on it: relay.signals.relay_device_deleted, tunnels.delivery.
    async_to_sync(signals.device_deleted.asend)(sender=Device, device_id=device_id, affected_uids=affected)
    return HttpResponse(status=204)


@api_view("GET")
async def agent_connect_http(request: ApiRequest) -> HttpResponse:
    """A plain HTTP request to the agent WebSocket endpoint: the same checks as the upgrade, then 426."""
    check_scopes(request.principal, "device")
    admission = await sync_to_async(services.agent_admit)(
        principal=request.principal,
        device_id=request.GET.get("device_id"),
        x_device_id=request.headers.get("X-Device-Id"),
    )
    await services.agent_socket_check(admission)
    raise FrameworkError(426)


@api_view("GET")
def device_events_non_get(request: ApiRequest) -> HttpResponse:
    """GET of the events stream is served by relay.event_streams.DeviceEventsConsumer; other methods land here."""
    raise method_not_allowed(["GET"])  # only HEAD gets here: a stream has nothing to show without its body
