"""System endpoints (docs/protocol/system-and-console.md §2-3): the service index, liveness, readiness, the API
document, and the Prometheus metrics (docs/operations.md).

No auth, no limits, except on /metrics. Readiness is 503 while the database cannot be queried, migrations are
pending, the process is shutting down (gateway_site.lifecycle), or, in Redis mode, Redis does not answer a PING within
a second.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from functools import cache
from importlib.resources import files

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from gateway_site import __version__, metrics, outage, redis_state
from gateway_site.auth import MISSING_TOKEN, bearer_token
from gateway_site.errors import Forbidden, Unauthorized, json_response, not_found
from gateway_site.lifecycle import Readiness, lifecycle
from gateway_site.requests import GatewayRequest
from gateway_site.timefmt import rfc3339_now
from gateway_site.views import api_view


@api_view("GET")
def index(request: HttpRequest) -> HttpResponse:
    config = settings.GATEWAY
    return json_response(
        {
            "name": "OSS Commands Gateway",
            "version": __version__,
            "auth_mode": config.auth_mode,
            "state_backend": config.state_backend,
            "endpoints": {
                "console": "/console",
                "healthz": "/healthz",
                "readyz": "/readyz",
                "oauth": "/oauth",
                "gateway": "/gateway/v1",
                "webhook_ingress": "/integrations/:route_id/:route_token",
                "integration_routes": "/gateway/v1/integrations/routes",
                "openapi": "/openapi.yaml",
            },
        }
    )


@api_view("GET")
def healthz(request: HttpRequest) -> HttpResponse:
    config = settings.GATEWAY
    return json_response(
        {
            "status": "ok",
            "service": "oss-commands-gateway",
            "version": __version__,
            "timestamp": rfc3339_now(),
            "auth_mode": config.auth_mode,
            "state_backend": config.state_backend,
        }
    )


@api_view("GET")
async def readyz(request: HttpRequest) -> HttpResponse:
    config = settings.GATEWAY
    readiness = await sync_to_async(lifecycle.readiness)()
    if readiness.ready and config.state_backend == "redis":
        readiness = await _redis_readiness(config.redis_url)
    body = {"status": "ready", "state_backend": config.state_backend, "timestamp": rfc3339_now()}
    if readiness.ready:
        return json_response(body)
    return json_response({**body, "status": "not_ready", "reason": readiness.reason}, status=503)


async def _redis_readiness(url: str) -> Readiness:
    """Redis mode: ready only while Redis answers a PING within READY_PING_TIMEOUT_SECONDS (docs/scaling.md "When
    Redis is down"); the answer also tells gateway_site.outage when an outage starts or ends."""
    try:
        await redis_state.ping(url)
    except Exception as exc:
        if outage.unavailable(exc) is None:
            raise
        return Readiness(False, "redis_unavailable")
    outage.outage.ended()
    return Readiness(True)


@cache
def _openapi_document() -> bytes:
    return files("gateway_site").joinpath("openapi.yaml").read_bytes()


@api_view("GET")
def openapi(request: HttpRequest) -> HttpResponse:
    """The OpenAPI document of every endpoint this code base serves (docs/openapi.yaml)."""
    response = HttpResponse(_openapi_document(), content_type="application/yaml; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    return response


# Counters of /gateway/v1/health, in the contract's order. Each app that owns one of these registers a provider in
# settings.GATEWAY_HEALTH_PROVIDERS: a callable taking the principal and returning some of these keys.
HEALTH_COUNTERS = ("devices", "grants", "sessions", "agents", "routes", "tunnels", "inflight", "event_backlogs")


@api_view("GET")
async def gateway_health(request: GatewayRequest) -> HttpResponse:
    """`GET /gateway/v1/health` (docs/protocol/system-and-console.md §4): optional auth; counters only for a signed-in
    caller."""
    principal = getattr(request, "principal", None)  # None too where the middleware did not run
    if principal is None:
        return json_response({"status": "ok"})
    counts = dict.fromkeys(HEALTH_COUNTERS, 0)
    for dotted in settings.GATEWAY_HEALTH_PROVIDERS:
        provider = import_string(dotted)
        if asyncio.iscoroutinefunction(provider):
            counts.update(await provider(principal))
        else:  # it reads the database
            counts.update(await sync_to_async(provider)(principal))
    return json_response({"status": "ok", "state_backend": settings.GATEWAY.state_backend, **counts})


# -- GET /metrics ----------------------------------------------------------------------------------------------------

INVALID_METRICS_TOKEN = "invalid metrics token"  # noqa: S105 - an error message, not a secret
LOOPBACK_ONLY = "metrics are served to loopback clients only unless METRICS_TOKEN is set"


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped loopback address; anything else (a name, nothing at all) is not."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped.is_loopback
    return parsed.is_loopback


def metrics_access(*, token: str, authorization: str | None, peer: str) -> None:
    """docs/operations.md, "Access": with METRICS_TOKEN set only `Authorization: Bearer <METRICS_TOKEN>` (compared in
    constant time) and nothing else; unset, only a loopback TCP peer. Headers never stand in for the peer: a forwarded
    address is whatever the client wrote."""
    if token:
        presented = bearer_token(authorization)
        if not presented:
            raise Unauthorized(MISSING_TOKEN, headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise Unauthorized(INVALID_METRICS_TOKEN, headers={"WWW-Authenticate": "Bearer"})
        return
    if not is_loopback(peer):
        raise Forbidden(LOOPBACK_ONLY)


@api_view("GET")
async def metrics_endpoint(request: HttpRequest) -> HttpResponse:
    """`GET /metrics`: this process's metrics in the Prometheus text format; 404 with METRICS_ENABLED=false."""
    config = settings.GATEWAY
    if not metrics.enabled():
        raise not_found()
    metrics_access(
        token=config.metrics_token,
        authorization=request.headers.get("Authorization"),
        peer=request.META.get("REMOTE_ADDR", ""),
    )
    await metrics.refresh_live()
    response = HttpResponse(metrics.exposition(), content_type=metrics.CONTENT_TYPE)
    response["Cache-Control"] = "no-store"
    return response
