"""The operator's services (docs/operations.md, "Operator console and commands"): one layer behind the operator
console's API and the management commands alike.

Listings read the database and the live state (presence, sessions, tunnels, answer counters) of every process that
shares it; actions go through the apps' own services and delivery seams, and each writes one audit line
(gateway_site.operator.audit). Functions here are sync, for Django views and management commands; the live parts
run through `async_to_sync` in one hop per call.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db.models import Count, F

from gateway_site import metrics_history
from gateway_site.auth import Principal
from gateway_site.errors import BadRequest, Forbidden, NotFound
from gateway_site.ids import canonical_email, is_valid_id
from gateway_site.operator import OperatorSession, audit, open_session, redeem_login_token
from gateway_site.timefmt import rfc3339
from oauthapp.models import UID_MAX_LENGTH, User
from oauthapp.services import tokens_revoke_all_of_user
from relay import delivery as relay_delivery
from relay.models import Device
from relay.registry import agents, streams
from relay.session_events import sessions_of_user_end
from relay.session_store import sessions
from relay.stores import Presence, presence
from shares import services as shares_services
from shares.models import Grant
from tunnels import buffer as tunnel_buffer
from tunnels import delivery as tunnel_delivery
from tunnels import inspector as tunnel_inspector
from tunnels import services as tunnel_services
from tunnels import tokens
from tunnels.models import IntegrationRoute
from tunnels.registry import inflight, tunnels

LIST_LIMIT = 500  # rows per listing; `truncated` says when there were more
REVOKED_REASON = "user_revoked"  # docs/protocol/decisions.md R4


def _live(function: Any, *args: Any) -> Any:
    """Run one coroutine function to completion from sync code (a view's worker thread or a command)."""
    return async_to_sync(function)(*args)


# -- signing in ----------------------------------------------------------------------------------------------------


def session_open_with_link(token: str) -> tuple[str, OperatorSession]:
    """Exchange a sign-in link's token (single use) for a session; returns (cookie value, session)."""
    redeem_login_token(token)
    return open_session(via="link")


def session_open_with_user(principal: Principal) -> tuple[str, OperatorSession]:
    """A signed-in user opens a session: only in oidc/firebase mode, and only when the user's stored email is verified
    and listed in OPERATOR_EMAILS (in demo mode anyone can claim any email)."""
    config = settings.GATEWAY
    if config.auth_mode not in ("oidc", "firebase"):
        raise Forbidden("operator sign-in by email needs AUTH_MODE=oidc or firebase; use manage.py operator_login")
    user = User.objects.filter(uid=principal.uid).first()
    email = canonical_email(user.email) if user is not None else ""
    if user is None or not user.email_verified or not email or email not in config.operator_emails:
        raise Forbidden("not an operator")
    return open_session(via="email", uid=user.uid)


def command_operator(claims: dict[str, Any]) -> str:
    """How the audit log names a management command: `cmd-` and a hash of its token's id."""
    return "cmd-" + hashlib.sha256(str(claims.get("jti", "")).encode()).hexdigest()[:12]


# -- live totals ---------------------------------------------------------------------------------------------------


def history() -> list[dict[str, Any]]:
    """The metrics sampler's points of the last 15 minutes (gateway_site.metrics_history, this process), oldest
    first, each `{t, agents, tunnels, streams, sessions, frames_a2c_per_s, frames_c2a_per_s, ingress_per_s,
    ingress_5xx_per_s, rate_limited_per_s, relay_p99_ms}` (the slower direction's p99; None without frames)."""
    return [_chart_point(point) for point in metrics_history.history()["points"]]


def _chart_point(point: dict[str, Any]) -> dict[str, Any]:
    frames = point.get("frames_per_second") or {}
    p99s = [v.get("p99_ms") for v in (point.get("relay_latency") or {}).values()]
    measured = [p99 for p99 in p99s if p99 is not None]
    return {
        "t": point.get("at"),
        "agents": point.get("agents"),
        "tunnels": point.get("tunnels"),
        "streams": sum(n or 0 for n in (point.get("streams") or {}).values()),
        "sessions": point.get("sessions"),
        "frames_a2c_per_s": frames.get("agent_to_client"),
        "frames_c2a_per_s": frames.get("client_to_agent"),
        "ingress_per_s": point.get("ingress_per_second"),
        "ingress_5xx_per_s": point.get("ingress_5xx_per_second"),
        "rate_limited_per_s": point.get("rate_limited_per_second"),
        "relay_p99_ms": max(measured) if measured else None,
    }


async def _overview_live() -> dict[str, int]:
    return {
        "agents": agents.count(),
        "tunnels": tunnels.count(),
        "streams": streams.count(),
        "inflight": inflight.count(),
        "sessions": len(await sessions.all()),
    }


def overview() -> dict[str, Any]:
    """Live totals. `agents`, `tunnels`, `streams` and `inflight` are this process's (the one answering); the others
    hold for every process sharing the state."""
    live = _live(_overview_live)
    users = set(User.objects.values_list("uid", flat=True)) | set(Device.objects.values_list("owner_uid", flat=True))
    totals = {
        **live,
        "users": len(users),
        "devices": Device.objects.count(),
        "routes": IntegrationRoute.objects.count(),
        "routes_disabled": IntegrationRoute.objects.filter(operator_disabled=True).count(),
    }
    config = settings.GATEWAY
    return {
        "time": rfc3339(time.time()),
        "node_id": config.node_id,
        "state_backend": config.state_backend,
        "auth_mode": config.auth_mode,
        "live": totals,
        "history": history(),
    }


# -- listings ------------------------------------------------------------------------------------------------------


def _online(record: Presence | None, now: float) -> bool:
    return record is not None and record.online(now)


async def _presence_of(device_ids: list[str]) -> dict[str, Presence]:
    return await presence.get_many(device_ids) if device_ids else {}


def users() -> dict[str, Any]:
    """Every user (a signed-in identity, or the owner of a device): uid, email, devices, last seen. Last seen is the
    later of the last token issued to the user (sign-in, refresh) and the last sign of life of one of the user's
    agents (docs/operations.md)."""
    rows = {u.uid: u for u in User.objects.order_by(F("last_seen_at").desc(nulls_last=True), "uid")[: LIST_LIMIT + 1]}
    owned = dict(Device.objects.values_list("owner_uid").annotate(n=Count("device_id")).values_list("owner_uid", "n"))
    uids = list(rows) + sorted(uid for uid in owned if uid not in rows)
    truncated = len(uids) > LIST_LIMIT
    uids = uids[:LIST_LIMIT]
    devices_of: dict[str, list[str]] = {}
    for device_id, owner in Device.objects.filter(owner_uid__in=uids).values_list("device_id", "owner_uid"):
        devices_of.setdefault(owner, []).append(device_id)
    records = _live(_presence_of, [d for ids in devices_of.values() for d in ids])
    now = time.time()
    listed = []
    for uid in uids:
        user = rows.get(uid)
        seen = user.last_seen_at.timestamp() if user is not None and user.last_seen_at else 0
        online = 0
        for device_id in devices_of.get(uid, []):
            record = records.get(device_id)
            if _online(record, now) and record is not None:
                online += 1
                seen = max(seen, record.last_seen_at)
        listed.append(
            {
                "uid": uid,
                "email": user.email if user is not None else "",
                "email_verified": bool(user is not None and user.email_verified),
                "devices": owned.get(uid, 0),
                "agents_online": online,
                "last_seen_at": rfc3339(seen) if seen else "",
                "created_at": rfc3339(user.created) if user is not None else "",
            }
        )
    return {"users": listed, "truncated": truncated}


async def _devices_live(device_ids: list[str]) -> tuple[dict[str, Presence], Counter[str]]:
    records = await _presence_of(device_ids)
    wanted = set(device_ids)
    counts = Counter(s["device_id"] for s in await sessions.all() if s["device_id"] in wanted)
    return records, counts


def devices() -> dict[str, Any]:
    """Every device across users: owner, online (and since when), live sessions, active grants."""
    found = list(Device.objects.order_by("owner_uid", "device_id")[: LIST_LIMIT + 1])
    truncated = len(found) > LIST_LIMIT
    found = found[:LIST_LIMIT]
    ids = [d.device_id for d in found]
    active = (
        Grant.objects.filter(device_id__in=ids, status=Grant.ACTIVE)
        .values_list("device_id")
        .annotate(n=Count("grant_id"))
    )
    grants = dict(active.values_list("device_id", "n"))
    records, session_counts = _live(_devices_live, ids)
    now = time.time()
    listed = []
    for device in found:
        record = records.get(device.device_id)
        online = _online(record, now)
        listed.append(
            {
                "device_id": device.device_id,
                "display_name": device.display_name or device.device_id,
                "owner_uid": device.owner_uid,
                "owner_email": device.owner_email,
                "online": online,
                "connected_at": rfc3339(record.connected_at) if online and record else "",
                "last_seen_at": rfc3339(record.last_seen_at) if online and record else "",
                "sessions": session_counts.get(device.device_id, 0),
                "grants": grants.get(device.device_id, 0),
            }
        )
    return {"devices": listed, "truncated": truncated}


async def _routes_live(route_ids: list[str]) -> tuple[list[bool], list[dict[str, int]], list[int], list[int]]:
    connected = await asyncio.gather(*(tunnel_delivery.route_target(r) for r in route_ids))
    counts = await asyncio.gather(*(tunnel_services.route_answer_counts(r) for r in route_ids))
    buffered = await asyncio.gather(*(tunnel_buffer.store().count(r) for r in route_ids))
    recorded = await asyncio.gather(*(tunnel_inspector.request_log().count(r) for r in route_ids))
    return [c is not None for c in connected], list(counts), list(buffered), list(recorded)


def routes() -> dict[str, Any]:
    """Every webhook route across owners: status, tunnel connected, last used, today's answers by class."""
    found = list(IntegrationRoute.objects.order_by("owner_uid", "-created_at", "route_id")[: LIST_LIMIT + 1])
    truncated = len(found) > LIST_LIMIT
    found = found[:LIST_LIMIT]
    connected, counts, buffered, recorded = _live(_routes_live, [r.route_id for r in found])
    listed = []
    for route, tunnel, answers, waiting, records in zip(found, connected, counts, buffered, recorded, strict=True):
        listed.append(
            {
                "route_id": route.route_id,
                "owner_uid": route.owner_uid,
                "device_id": route.device_id,
                "interface_type": route.interface_type,
                "status": route.status,
                "disabled": route.operator_disabled,
                "verify": route.verify_provider or None,  # the provider only: the secret is never shown
                "tunnel_connected": tunnel,
                "last_used_at": rfc3339(route.token_last_used_at),
                "token_expires_at": rfc3339(route.token_expires_at),
                "answers_today": answers,
                "buffered": waiting,  # webhooks stored for delivery (docs/protocol/webhooks.md §3)
                "recorded": records,  # the inspector's records (§2)
            }
        )
    return {"routes": listed, "truncated": truncated}


# -- actions -------------------------------------------------------------------------------------------------------


def _device(device_id: str) -> Device:
    if not is_valid_id(device_id):
        raise BadRequest(f"malformed device id: {device_id[:140]}")
    device = Device.objects.filter(device_id=device_id.strip()).first()
    if device is None:
        raise NotFound(f"unknown device: {device_id}")
    return device


def _route_id(route_id: str) -> str:
    if not tokens.ROUTE_ID_RE.fullmatch(route_id):
        raise BadRequest(f"malformed route id: {route_id[:140]} (expected rt_ and 32 hex digits)")
    return route_id


def disconnect_agent(device_id: str, *, operator: str) -> dict[str, Any]:
    """Close the device's agent socket wherever it is (`1008 disconnected_by_operator`); the agent may reconnect."""
    device = _device(device_id)
    closed = bool(_live(relay_delivery.disconnect_agent, device.device_id))
    audit(operator, "disconnect_agent", device.device_id, disconnected=closed)
    return {"device_id": device.device_id, "owner_uid": device.owner_uid, "disconnected": closed}


def set_route_disabled(route_id: str, *, disabled: bool, operator: str) -> dict[str, Any]:
    """Disable a route (ingress answers its webhooks 503) or enable it again."""
    route = tunnel_services.route_operator_disable(_route_id(route_id), disabled=disabled)
    audit(operator, "disable_route" if disabled else "enable_route", route.route_id)
    return {"route_id": route.route_id, "owner_uid": route.owner_uid, "disabled": route.operator_disabled}


def rotate_route_token(route_id: str, *, grace_seconds: int, operator: str) -> dict[str, Any]:
    """A new token for the route; the answer holds the new public URL (shown once: only its hash is kept)."""
    _route_id(route_id)
    if not IntegrationRoute.objects.filter(route_id=route_id).exists():
        raise NotFound(f"unknown route: {route_id}")
    rotation = tunnel_services.route_token_rotate(principal=None, route_id=route_id, grace_seconds=grace_seconds)
    audit(operator, "rotate_route_token", route_id, grace_seconds=grace_seconds)
    return {"owner_uid": rotation.route.owner_uid, **rotation.view()}


def _check_uid(uid: object) -> str:
    if not isinstance(uid, str) or not uid.strip():
        raise BadRequest("uid is required")
    if len(uid) > UID_MAX_LENGTH:
        raise BadRequest(f"uid must be at most {UID_MAX_LENGTH} characters")
    return uid.strip()


async def _end_live(uid: str, ended: list[shares_services.GrantEnded], device_ids: list[str]) -> tuple[int, int]:
    """The live side of a revoke: grantees lose access at once (their streams end with `grant_revoked`), the user's
    sessions end (`user_revoked`), the user's agents are disconnected. Returns (sessions ended, agents closed)."""
    for grant in ended:
        if grant.grantee_uid:
            await relay_delivery.access_ended(
                uids=[grant.grantee_uid], device_id=grant.device_id, reason="grant_revoked"
            )
    ended_sessions = await sessions_of_user_end(uid, REVOKED_REASON)
    closed = 0
    for device_id in device_ids:
        closed += bool(await relay_delivery.disconnect_agent(device_id))
    return len(ended_sessions), closed


def revoke_user(uid: object, *, operator: str) -> dict[str, Any]:
    """Revoke everything of one user: refresh-token families (no new access tokens; those issued stay valid until
    they expire), grants given and received, sessions, routes (disabled, restorable one by one), agent sockets."""
    uid = _check_uid(uid)
    known = (
        User.objects.filter(uid=uid).exists()
        or Device.objects.filter(owner_uid=uid).exists()
        or Grant.objects.filter(grantee_uid=uid).exists()
        or IntegrationRoute.objects.filter(owner_uid=uid).exists()
    )
    if not known:
        raise NotFound(f"unknown user: {uid}")
    refresh_tokens = tokens_revoke_all_of_user(uid)
    ended = shares_services.grants_revoke_all_of_user(uid=uid, revoked_by="operator")
    disabled_routes = tunnel_services.routes_operator_disable_of_owner(uid)
    device_ids = list(Device.objects.filter(owner_uid=uid).values_list("device_id", flat=True))
    ended_sessions, closed = _live(_end_live, uid, ended, device_ids)
    result = {
        "uid": uid,
        "refresh_tokens": refresh_tokens,
        "grants": len(ended),
        "sessions": ended_sessions,
        "routes": len(disabled_routes),
        "agents": closed,
    }
    audit(operator, "revoke_user", uid, **{k: v for k, v in result.items() if k != "uid"})
    return result
