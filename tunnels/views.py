"""Integration route endpoints, the public webhook ingress and the operator's rotation endpoint."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway_site.auth import Principal
from gateway_site.errors import ApiError, BadRequest, json_response
from gateway_site.jsonbody import parse_object
from gateway_site.operator import verify_operator_token
from gateway_site.requests import ApiRequest
from gateway_site.views import api_view
from tunnels import delivery, requests, services

logger = logging.getLogger("gateway.tunnels")


def _principal(request: ApiRequest) -> Principal:
    return request.principal


def _body(request: HttpRequest) -> dict[str, Any]:
    """A JSON object, sent as `application/json` or without a type (docs/protocol/tunnels.md §2)."""
    return parse_object(
        request.body,
        request.META.get("CONTENT_TYPE", ""),
        services.invalid("Invalid request body"),
        media_types=frozenset({"application/json", ""}),
        null_is_empty=False,
    )


def _deactivate(route_id: str, reason: str) -> None:
    async_to_sync(delivery.route_deactivated)(route_id, reason)


@api_view("GET", "POST")
def routes(request: ApiRequest) -> HttpResponse:
    if request.method == "POST":
        created = services.route_create(
            principal=_principal(request), body=_body(request), header_device_id=request.headers.get("X-Device-Id")
        )
        return json_response(
            {
                "route": services.route_view(created.route),
                "public_url": services.public_url(created.route.route_id, created.token),
                "route_token": created.token,
            },
            status=201,
        )
    listed = services.route_list(
        principal=_principal(request),
        interface_type=request.GET.get("interface_type", ""),
        status=request.GET.get("status", ""),
    )
    return json_response({"routes": listed})


@api_view("PUT", "DELETE")
def route_detail(request: ApiRequest, route_id: str) -> HttpResponse:
    if request.method == "PUT":
        services.validate_route_id(route_id)
        updated = services.route_update(principal=_principal(request), route_id=route_id, body=_body(request))
        if updated.drop_activation:
            _deactivate(route_id, "route_updated")
        return json_response({"route": services.route_view(updated.route)})
    result = services.route_delete(principal=_principal(request), route_id=route_id)
    async_to_sync(delivery.routes_removed)([route_id])
    return json_response(result)


@api_view("POST")
def rotate_token(request: ApiRequest, route_id: str) -> HttpResponse:
    services.validate_route_id(route_id)
    try:
        body: dict[str, Any] | None = parse_object(
            request.body, None, services.invalid("Invalid request body"), media_types=None, null_is_empty=False
        )
    except ApiError:
        body = None  # an empty or unparsable body, or one that is no object, counts as empty (tunnels.md §2.5)
    grace = services.grace_from(body)
    rotation = services.route_token_rotate(principal=_principal(request), route_id=route_id, grace_seconds=grace)
    return json_response(rotation.view())


@api_view("GET")
async def route_requests(request: ApiRequest, route_id: str) -> HttpResponse:
    """The route's inspector records, newest first (docs/protocol/webhooks.md §2)."""
    found = await requests.recent(_principal(request), route_id, request.GET.get("limit"))
    return json_response({"requests": found})


@api_view("GET")
async def route_request(request: ApiRequest, route_id: str, request_id: str) -> HttpResponse:
    return json_response(await requests.one(_principal(request), route_id, request_id))


@api_view("POST")
async def route_request_replay(request: ApiRequest, route_id: str, request_id: str) -> HttpResponse:
    return json_response(await requests.replay(_principal(request), route_id, request_id))


@api_view("GET")
async def tunnel_connect_http(request: ApiRequest) -> HttpResponse:
    """Plain HTTP to the tunnel WebSocket endpoint: the upgrade's checks, then 426."""
    from asgiref.sync import sync_to_async

    from gateway_site.auth import check_scopes
    from gateway_site.errors import FrameworkError
    from tunnels.consumers import tunnel_admit, tunnel_check

    principal = _principal(request)
    check_scopes(principal, "device")
    device_id = await sync_to_async(tunnel_admit)(principal=principal, device_id=request.GET.get("device_id"))
    await tunnel_check(principal.uid, device_id)
    raise FrameworkError(426)


@api_view("POST")
def operator_rotate(request: HttpRequest) -> HttpResponse:
    """`rotate_route_tokens` against a running gateway: `{route_ids|owner_uid|expired, grace_seconds}`."""
    verify_operator_token(request.headers.get("Authorization"))
    body = _body(request)
    route_ids = body.get("route_ids", [])
    if not isinstance(route_ids, list) or not all(isinstance(rid, str) for rid in route_ids):
        raise BadRequest("route_ids must be a list of route ids")
    changed = services.routes_rotate(
        route_ids=route_ids,
        owner_uid=str(body.get("owner_uid") or ""),
        expired=body.get("expired") is True,
        grace_seconds=services.grace_from(body),
    )
    return json_response({"rotated": changed})


@csrf_exempt
def ingress(request: HttpRequest, route_id: str, route_token: str) -> HttpResponse:
    """Webhook ingress is served on ASGI ahead of Django (tunnels.ingress); this route only documents the path."""
    raise AssertionError("unreachable: /integrations/ is routed to tunnels.ingress")
