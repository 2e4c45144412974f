"""Public webhook ingress `ANY /integrations/{route_id}/{route_token}` (docs/protocol/tunnels.md §4), served on ASGI
ahead of Django: it is one of the two hottest endpoints. The first failing step decides; failures answer with the reason
phrase as text/plain."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import time
import uuid
from typing import Any

from django.conf import settings

from gateway_site import asgi_http, outage, ratelimit
from gateway_site.clientip import client_ip_from_scope
from gateway_site.errors import JSON_CONTENT_TYPE, PLAIN_CONTENT_TYPE, PlainError
from gateway_site.timefmt import rfc3339
from tunnels import delivery, inspector, services, tokens, verify
from tunnels.registry import InflightFull, inflight

logger = logging.getLogger("gateway.tunnels")
PATH = re.compile(r"^/integrations/([^/]*)/([^/]*)$")
MAX_TOKEN_LENGTH = 256  # route tokens are 43 characters; anything much longer is not worth hashing

DROPPED_REQUEST_HEADERS = frozenset({"host", "connection", "transfer-encoding"})

# A tunnel's answer is untrusted content served from the gateway's own origin (decisions.md H1): it is sandboxed (no
# scripts, no same-origin access, no service worker), and only these of its headers pass.
SANDBOX_HEADERS = (("Content-Security-Policy", "sandbox; default-src 'none'"),)
RELAYED_RESPONSE_HEADERS = frozenset(
    {"content-type", "cache-control", "etag", "last-modified", "content-language", "retry-after", "vary"}
)
BLOCKED_X_HEADERS = frozenset({"x-frame-options", "x-content-type-options", "x-xss-protection"})
INFLIGHT_FULL = {
    "route": "too many webhooks in flight for this route",
    "owner": "too many webhooks in flight for this route's owner",
}


async def not_found(scope: dict[str, Any], send: Any) -> None:
    await _plain(send, scope, 404)


def relayable(name: str) -> bool:
    """Whether a response header from the tunnel may reach the sender (lower-case `name`)."""
    if name in RELAYED_RESPONSE_HEADERS:
        return True
    return name.startswith("x-") and name not in BLOCKED_X_HEADERS


async def _plain(send: Any, scope: dict[str, Any], status: int, extra: dict[str, str] | None = None) -> None:
    await _refuse(send, scope, PlainError(status, headers=extra))


async def _refuse(send: Any, scope: dict[str, Any], error: PlainError) -> None:
    """The reason phrase as text/plain, sandboxed like every ingress answer."""
    await asgi_http.respond_error(send, scope, error, SANDBOX_HEADERS)


def _canonical(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


async def _allowed(bucket: str, limit: int, scope: str) -> bool:
    return await ratelimit.hit(bucket, limit, settings.GATEWAY.ingress_rate_window_seconds, scope=scope)


def _retry_after() -> dict[str, str]:
    """The time left in the window, not its length (docs/protocol/tunnels.md §5)."""
    return {"Retry-After": str(ratelimit.seconds_left(settings.GATEWAY.ingress_rate_window_seconds))}


def _scheme(scope: dict[str, Any]) -> str:
    """The scheme the sender used: a trusted `X-Forwarded-Proto` behind an https proxy, else the connection's."""
    if settings.GATEWAY.public_base_is_https and asgi_http.header(scope, b"x-forwarded-proto") == "https":
        return "https"
    return str(scope.get("scheme") or "http")


def request_frame(scope: dict[str, Any], route: services.IngressRoute, request_id: str, body: bytes) -> dict[str, Any]:
    raw_path = scope.get("raw_path") or scope["path"].encode()
    query = (scope.get("query_string") or b"").decode("latin-1")
    raw_target = raw_path.decode("latin-1") + (f"?{query}" if query else "")
    host = asgi_http.header(scope, b"host") or ""
    scheme = _scheme(scope)
    headers = [
        [_canonical(k.decode("latin-1")), v.decode("latin-1")]
        for k, v in scope.get("headers") or ()
        if k.decode("latin-1").lower() not in DROPPED_REQUEST_HEADERS
    ]
    return {
        "type": "tunnel.request",
        "request_id": request_id,
        "route_id": route.route_id,
        "method": scope["method"],
        "scheme": scheme,
        "host": host,
        "external_url": f"{scheme}://{host}{raw_target}",
        "raw_target": raw_target,
        "raw_target_base64": base64.b64encode(raw_target.encode("latin-1", "replace")).decode(),
        "path": scope["path"],
        "query": query,
        "headers": headers,
        "body_base64": base64.b64encode(body).decode(),
        "received_at": rfc3339(time.time()),
        "deadline_ms": route.deadline_ms,
    }


async def _inflight_full(send: Any, scope: dict[str, Any], share: str) -> None:
    """429 with a JSON error: this route's or this owner's share of waiting webhooks is used up (decisions.md H3)."""
    body = json.dumps({"error": INFLIGHT_FULL[share]}).encode()
    headers = [*SANDBOX_HEADERS, ("Retry-After", "1")]
    await asgi_http.respond(send, scope, 429, body, JSON_CONTENT_TYPE, headers)


async def _relay(send: Any, scope: dict[str, Any], answer: dict[str, Any]) -> None:
    status = answer.get("status")
    status = int(status) if isinstance(status, int | float) and not isinstance(status, bool) else 200
    encoded = answer.get("body_base64") or ""
    try:
        body = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else None
    except (binascii.Error, ValueError):
        body = None
    # Upstream answers 502 for an undecodable body or an empty one with status <= 0; a status HTTP cannot carry
    # (below 100 or above 599) cannot be relayed either, so it is a 502 too.
    if body is None or not 100 <= status <= 599:
        await _plain(send, scope, 502)
        return
    chosen: dict[str, tuple[str, str]] = {}  # a later pair with the same name replaces an earlier one
    headers = answer.get("headers")
    for pair in headers if isinstance(headers, list) else []:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            continue
        name, value = pair
        lowered = name.lower()
        if not name.strip() or any(c in name + value for c in "\r\n") or not relayable(lowered):
            continue
        chosen[lowered] = (name, value)
    content_type = chosen.pop("content-type", ("Content-Type", "text/plain; charset=utf-8"))[1]
    await asgi_http.respond(send, scope, status, body, content_type, [*SANDBOX_HEADERS, *chosen.values()])


def _declared_too_large(scope: dict[str, Any], route: services.IngressRoute) -> bool:
    declared = asgi_http.header(scope, b"content-length") or ""
    return declared.isdigit() and int(declared) > route.max_body_bytes


async def _read_body(receive: Any, send: Any, scope: dict[str, Any], route: services.IngressRoute) -> bytes | None:
    """The body, or None once `413` was sent for a body that grew past the route's `max_body_bytes`."""
    body = await asgi_http.read_body_capped(receive, route.max_body_bytes)
    if body is None:
        await _plain(send, scope, 413)
    return body


async def _verified_body(
    receive: Any, send: Any, scope: dict[str, Any], route: services.IngressRoute, outcome: inspector.Outcome
) -> bytes | None:
    """For a route with `verify` (docs/protocol/webhooks.md §1): the body, read and checked right after the token, so
    a forged webhook spends only the sender's per-IP budget; None once a refusal (413, 401) has been sent. The
    inspector's record of it (§2) gets the body and whether its signature held."""
    if _declared_too_large(scope, route):
        await _plain(send, scope, 413)
        return None
    body = await _read_body(receive, send, scope, route)
    if body is None:
        return None
    result = verify.check(route.route_id, route.verify or {}, scope.get("headers") or (), body)
    outcome.body, outcome.verified = body, result.ok
    if result.ok:
        return body
    logger.info("webhook signature refused", extra={"fields": {"route_id": route.route_id, "reason": result.reason}})
    await asgi_http.respond(send, scope, 401, b"invalid signature", PLAIN_CONTENT_TYPE, SANDBOX_HEADERS)
    return None


class _Answer:
    """What ingress answered: the status it sent, and whether the route's token was accepted (only then does the
    answer count for the route, docs/operations.md, and is it recorded, docs/protocol/webhooks.md §2)."""

    __slots__ = ("counted", "outcome", "route")

    def __init__(self) -> None:
        self.counted = False
        self.route: services.IngressRoute | None = None
        self.outcome = inspector.Outcome()

    @property
    def status(self) -> int:
        return self.outcome.status


async def ingress(scope: dict[str, Any], receive: Any, send: Any, route_id: str, route_token: str) -> None:
    """One webhook; when the shared state (Redis) is down, `503 {"error":"state_unavailable"}` in JSON
    (docs/scaling.md "When Redis is down"): every answer is sent last, so nothing was sent yet when a call fails."""
    answer = _Answer()

    async def recording_send(message: dict[str, Any]) -> None:
        answer.outcome.see(message)
        await send(message)

    try:
        await _ingress(scope, receive, recording_send, route_id, route_token, answer)
    except Exception as exc:
        unavailable = outage.unavailable(exc)
        if unavailable is None:
            raise
        await asgi_http.respond_error(send, scope, unavailable, SANDBOX_HEADERS)
        return
    if answer.counted and answer.status:
        try:  # the answer is already on its way: counting it must neither delay nor fail it
            await services.ingress_count(route_id, answer.status)
        except Exception as exc:
            if outage.unavailable(exc) is None:
                logger.warning("route answer not counted", exc_info=True, extra={"fields": {"route_id": route_id}})
        if answer.route is not None and settings.GATEWAY_INSPECTOR_ENABLED:
            await _record(scope, route_token, answer.route, answer.outcome)
    if answer.outcome.buffered:  # after its record exists, so that its delivery can update it
        _buffering().kick(route_id)


def _buffering() -> Any:
    """tunnels.buffering, which delivers through this module (imported when first needed)."""
    from tunnels import buffering

    return buffering


async def _record(scope: dict[str, Any], token: str, route: services.IngressRoute, outcome: inspector.Outcome) -> None:
    """Record the webhook for its route's inspector (docs/protocol/webhooks.md §2), after its answer went out; a
    failure is logged (without the request) and changes nothing for the sender."""
    declared = asgi_http.header(scope, b"content-length") or ""
    # Taken now and built when first read (inspector.Pending), except a buffered webhook's: its delivery updates it.
    pending = inspector.Pending(
        method=scope["method"],
        query=(scope.get("query_string") or b"").decode("latin-1"),
        headers=inspector.record_headers(
            scope.get("headers") or (), token=token, signature_header=str((route.verify or {}).get("header") or "")
        ),
        declared_size=int(declared) if declared.isdigit() else 0,
        outcome=outcome,
        capture_bodies=route.capture_bodies,
        token=token,
    )
    built = pending.build() if outcome.buffered else None
    try:
        await inspector.save(route.route_id, built or pending)
        if built is not None:
            await _buffering().record_saved(route.route_id, built)
    except Exception as exc:
        if outage.unavailable(exc) is None:
            logger.warning("webhook not recorded", exc_info=True, extra={"fields": {"route_id": route.route_id}})


async def _ingress(
    scope: dict[str, Any], receive: Any, send: Any, route_id: str, route_token: str, answer: _Answer
) -> None:
    """The order of checks of decisions.md H2: nothing is counted or stored for a malformed id, an unknown route or a
    wrong token uses only the caller's IP budget, and no body is read before the route accepts its declared size."""
    config = settings.GATEWAY
    if not tokens.ROUTE_ID_RE.fullmatch(route_id) or not route_token or len(route_token) > MAX_TOKEN_LENGTH:
        await _plain(send, scope, 404)
        return
    if not await _allowed(f"ingress:ip:{client_ip_from_scope(scope)}", config.ingress_ip_limit_per_window, "ip"):
        await _plain(send, scope, 429, _retry_after())
        return
    try:
        route = services.ingress_check(await services.ingress_snapshot(route_id), route_token)
    except services.IngressRefused as refused:
        await _refuse(send, scope, refused)
        return
    answer.counted = True
    answer.route = route
    body: bytes | None = None  # read early only for a route that verifies signatures
    if route.verify is not None:
        body = await _verified_body(receive, send, scope, route, answer.outcome)
        if body is None:
            return
    if not await _allowed(f"ingress:route:{route_id}", config.ingress_route_limit_per_window, "route") or not (
        await _allowed("ingress:global", config.ingress_global_limit_per_window, "global")
    ):
        await _plain(send, scope, 429, _retry_after())
        return
    if body is None and _declared_too_large(scope, route):
        await _plain(send, scope, 413)
        return
    target = await delivery.route_target(route.route_id) if route.active else None
    # docs/protocol/webhooks.md §3: stored while no tunnel takes it, and behind what is stored already.
    buffered = route.buffer is not None and (target is None or await _buffering().waiting(route.route_id))
    if target is None and not buffered:
        await _plain(send, scope, 503)
        return
    if body is None:
        body = await _read_body(receive, send, scope, route)
        if body is None:
            return
    answer.outcome.body = body
    if buffered:
        await _buffering().accept(send, scope, route, body, answer.outcome)
    elif target is not None:
        answer.outcome.answered = await deliver(send, scope, route, target, body)


async def deliver(
    send: Any,
    scope: dict[str, Any],
    route: services.IngressRoute,
    target: str,
    body: bytes,
    *,
    frame: dict[str, Any] | None = None,
) -> bool:
    """Steps 11 on of docs/protocol/tunnels.md §4 for a webhook whose checks passed (ingress, replay and buffered ones):
    claim its place in flight, hand it to the tunnel and relay the answer to `send`; True when the tunnel answered.
    `frame`: the stored `tunnel.request` of a buffered webhook (tunnels.buffering), sent instead of one built now."""
    request_id = "req_" + str(uuid.uuid4())[:12]
    full = await services.inflight_claim(route, request_id)
    if full is not None:
        await _inflight_full(send, scope, full)
        return False
    try:
        if frame is None:
            frame = request_frame(scope, route, request_id, body)
        return await _exchange(send, scope, route, target, request_id, frame)
    finally:
        await services.inflight_release(route, request_id)


async def _exchange(
    send: Any, scope: dict[str, Any], route: services.IngressRoute, target: str, request_id: str, frame: dict[str, Any]
) -> bool:
    """Hand the webhook to the tunnel at `target` (tunnels.delivery.route_target), wait for its answer until the
    route's deadline and relay it (the route's and owner's shares are already claimed; this process's own safety net
    is checked here). True when the tunnel answered."""
    try:
        entry = inflight.add(request_id, route.device_id, target, route_id=route.route_id)
    except InflightFull:
        await _plain(send, scope, 503)
        return False
    try:
        await services.ingress_mark_used_soon(route.route_id)
        frame = {**frame, "request_id": request_id, "deadline_ms": route.deadline_ms}
        sent = await delivery.send_request(route.route_id, target, frame)
    except BaseException:
        inflight.pop(request_id)  # the slot goes back whatever failed (a Redis outage included)
        raise
    if not sent:
        inflight.pop(request_id)
        await _plain(send, scope, 503)
        return False
    try:
        answer = await asyncio.wait_for(asyncio.shield(entry.future), timeout=route.deadline_ms / 1000)
    except TimeoutError:
        inflight.pop(request_id)
        await _plain(send, scope, 504)
        return False
    except ConnectionError:
        await _plain(send, scope, 503)  # the tunnel went away while we waited
        return False
    await _relay(send, scope, answer)
    return True
