"""Integration route endpoints, the public webhook ingress and the operator's rotation endpoint."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
import uuid
from http import HTTPStatus
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway_site import ratelimit
from gateway_site.clientip import client_ip_from_request
from gateway_site.errors import json_response
from gateway_site.operator import verify_operator_token
from gateway_site.views import api_view
from relay.transport import rfc3339
from tunnels import services
from tunnels.registry import inflight, tunnels

logger = logging.getLogger("gateway.tunnels")

DROPPED_REQUEST_HEADERS = frozenset({"host", "connection", "transfer-encoding"})
DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "host",
        "connection",
        "transfer-encoding",
        "content-length",
        "set-cookie",
        "set-cookie2",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
        "keep-alive",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-headers",
        "access-control-allow-methods",
        "access-control-expose-headers",
        "access-control-max-age",
    }
)


def _principal(request: HttpRequest) -> Any:
    return request.principal  # type: ignore[attr-defined]


def _body(request: HttpRequest) -> dict[str, Any]:
    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    try:
        data = json.loads(request.body.decode("utf-8")) if request.body else None
    except (UnicodeDecodeError, ValueError):
        raise services.invalid("Invalid request body") from None
    if content_type not in ("application/json", "") or not isinstance(data, dict):
        raise services.invalid("Invalid request body")
    return data


def _deactivate(route_id: str, reason: str) -> None:
    holder = tunnels.holder(route_id)
    if holder is not None:
        async_to_sync(holder.route_deactivated)(route_id, reason)  # type: ignore[attr-defined]


@api_view("GET", "POST")
def routes(request: HttpRequest) -> HttpResponse:
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
def route_detail(request: HttpRequest, route_id: str) -> HttpResponse:
    if request.method == "PUT":
        services.validate_route_id(route_id)
        updated = services.route_update(principal=_principal(request), route_id=route_id, body=_body(request))
        if updated.drop_activation:
            _deactivate(route_id, "route_updated")
        return json_response({"route": services.route_view(updated.route)})
    result = services.route_delete(principal=_principal(request), route_id=route_id)
    _deactivate(route_id, "revoked")
    return json_response(result)


@api_view("POST")
def rotate_token(request: HttpRequest, route_id: str) -> HttpResponse:
    services.validate_route_id(route_id)
    try:
        body = json.loads(request.body.decode("utf-8")) if request.body else None
    except (UnicodeDecodeError, ValueError):
        body = None  # an unparsable body counts as empty (tunnels.md §2.5)
    grace = services.grace_from(body if isinstance(body, dict) else None)
    rotation = services.route_token_rotate(principal=_principal(request), route_id=route_id, grace_seconds=grace)
    return json_response(rotation.view())


@api_view("GET")
def tunnel_connect_http(request: HttpRequest) -> HttpResponse:
    """Plain HTTP to the tunnel WebSocket endpoint: the upgrade's checks, then 426."""
    from gateway_site.auth import check_scopes
    from gateway_site.errors import FrameworkError
    from tunnels.consumers import tunnel_admit

    check_scopes(_principal(request), "device")
    tunnel_admit(principal=_principal(request), device_id=request.GET.get("device_id"))
    raise FrameworkError(426)


@api_view("POST")
def operator_rotate(request: HttpRequest) -> HttpResponse:
    """`rotate_route_tokens` against a running gateway: `{route_id|owner_uid|expired, grace_seconds}`."""
    verify_operator_token(request.headers.get("Authorization"))
    body = _body(request)
    changed = services.routes_rotate(
        route_id=str(body.get("route_id") or ""),
        owner_uid=str(body.get("owner_uid") or ""),
        expired=body.get("expired") is True,
        grace_seconds=services.grace_from(body),
    )
    return json_response({"rotated": changed})


# -- public ingress -------------------------------------------------------------------------------------------------


def _plain(status: int, headers: dict[str, str] | None = None) -> HttpResponse:
    response = HttpResponse(HTTPStatus(status).phrase, status=status, content_type="text/plain; charset=utf-8")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _canonical(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _request_headers(request: HttpRequest) -> list[list[str]]:
    scope = getattr(request, "scope", None)
    if scope is not None:
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])]
    else:  # the WSGI test client
        pairs = list(request.headers.items())
    return [[_canonical(name), value] for name, value in pairs if name.lower() not in DROPPED_REQUEST_HEADERS]


def _raw_target(request: HttpRequest) -> str:
    scope = getattr(request, "scope", None)
    raw_path = scope.get("raw_path") if scope else None
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) and raw_path else request.path
    query = request.META.get("QUERY_STRING", "")
    return f"{path}?{query}" if query else path


def _rate_limited(request: HttpRequest, route_id: str) -> HttpResponse | None:
    config = settings.GATEWAY
    window = config.ingress_rate_window_seconds
    ip = client_ip_from_request(request)
    for bucket, limit in (
        ("ingress:global", config.ingress_global_limit_per_window),
        (f"ingress:ip:{ip}", config.ingress_ip_limit_per_window),
        (f"ingress:route:{route_id}", config.ingress_route_limit_per_window),
    ):
        if not ratelimit.hit(bucket, limit, window):
            return _plain(429, {"Retry-After": str(window)})
    return None


def _relay(answer: dict[str, Any]) -> HttpResponse:
    status = answer.get("status")
    status = int(status) if isinstance(status, int | float) and not isinstance(status, bool) else 200
    encoded = answer.get("body_base64") or ""
    try:
        body = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else None
    except (binascii.Error, ValueError):
        body = None
    if body is None or not 100 <= status <= 599:
        return _plain(502)
    response = HttpResponse(body, status=status)
    del response["Content-Type"]
    headers = answer.get("headers")
    for pair in headers if isinstance(headers, list) else []:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            continue
        name, value = pair
        if not name.strip() or any(c in name + value for c in "\r\n") or name.lower() in DROPPED_RESPONSE_HEADERS:
            continue
        response[name] = value
    if "Content-Type" not in response:
        response["Content-Type"] = "text/plain; charset=utf-8"
    return response


@csrf_exempt
async def ingress(request: HttpRequest, route_id: str, route_token: str) -> HttpResponse:
    """`ALL /integrations/{route_id}/{route_token}` (tunnels.md §4): the first failing step decides."""
    limited = _rate_limited(request, route_id)
    if limited is not None:
        return limited
    try:
        route = await sync_to_async(services.ingress_route)(route_id, route_token)
    except services.IngressRefused as refused:
        return _plain(refused.status)
    holder = tunnels.holder(route.route_id)
    if holder is None:
        return _plain(503)
    declared = request.META.get("CONTENT_LENGTH", "")
    if declared.isdigit() and int(declared) > route.max_body_bytes:
        return _plain(413)
    body = request.body
    if len(body) > route.max_body_bytes:
        return _plain(413)
    await sync_to_async(services.ingress_mark_used)(route.route_id)
    request_id = "req_" + str(uuid.uuid4())[:12]
    entry = inflight.add(request_id, route.device_id, holder.connection_id)
    if entry is None:
        return _plain(503)
    raw_target = _raw_target(request)
    scheme = "https" if request.is_secure() else "http"
    host = request.META.get("HTTP_HOST", "")
    frame = {
        "type": "tunnel.request",
        "request_id": request_id,
        "route_id": route.route_id,
        "method": request.method,
        "scheme": scheme,
        "host": host,
        "external_url": f"{scheme}://{host}{raw_target}",
        "raw_target": raw_target,
        "raw_target_base64": base64.b64encode(raw_target.encode("latin-1", "replace")).decode(),
        "path": request.path,
        "query": request.META.get("QUERY_STRING", ""),
        "headers": _request_headers(request),
        "body_base64": base64.b64encode(body).decode(),
        "received_at": rfc3339(time.time()),
        "deadline_ms": route.deadline_ms,
    }
    if not await holder.send_frame(frame):
        inflight.pop(request_id)
        return _plain(503)
    try:
        answer = await asyncio.wait_for(asyncio.shield(entry.future), timeout=route.deadline_ms / 1000)
    except TimeoutError:
        inflight.pop(request_id)
        return _plain(504)
    except ConnectionError:
        return _plain(503)  # the tunnel went away while we waited
    return _relay(answer)
