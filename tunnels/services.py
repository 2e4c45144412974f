"""Integration route rules (docs/protocol/tunnels.md §1-2, §3.2, §4): CRUD, token rotation, activation and the ingress
checks."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.db.models import F

from gateway_site import dblocks
from gateway_site.auth import Principal
from gateway_site.errors import ApiError, NotFound, PlainError
from gateway_site.ids import canonical_email, is_valid_id
from gateway_site.kvstore import KeyValueStore, blocking, kv_store
from gateway_site.leases import leases
from gateway_site.timefmt import rfc3339
from relay.models import Device
from tunnels import tokens, verify
from tunnels.models import IntegrationRoute

logger = logging.getLogger("gateway.tunnels")

INTERFACE_TYPE_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
MAX_ROUTES_PER_OWNER = 100
INT_RANGES = {
    "deadline_ms": (500, 10000, 2500),
    "max_body_bytes": (1024, 5242880, 1048576),
    "token_max_age_days": (1, 365, 90),
}


class RouteError(ApiError):
    """The integrations error shape: `{"error": {"code": …, "message": …}}` (docs/protocol/tunnels.md §2)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, status=status)
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def invalid(message: str) -> RouteError:
    return RouteError(400, "invalid_request", message)


def _now() -> datetime:
    return datetime.now(tz=UTC).replace(microsecond=0)


def public_url(route_id: str, token: str) -> str:
    base = settings.GATEWAY.ingress_url.rstrip("/") or "http://localhost:8080"
    return f"{base}/integrations/{route_id}/{token}"


def route_view(route: IntegrationRoute) -> dict[str, Any]:
    return {
        "route_id": route.route_id,
        "interface_id": route.interface_id,
        "interface_type": route.interface_type,
        "token_auth_mode": route.token_auth_mode,
        "status": route.status,
        "deadline_ms": route.deadline_ms,
        "max_body_bytes": route.max_body_bytes,
        "token_max_age_days": route.token_max_age_days,
        "token_expires_at": rfc3339(route.token_expires_at),
        "token_last_used_at": rfc3339(route.token_last_used_at),
        "created_at": rfc3339(route.created_at),
        "updated_at": rfc3339(route.updated_at),
        "verify": verify.render(route.verify_provider, route.verify_header, route.verify_tolerance_seconds),
        "inspect": {"capture_bodies": route.inspect_capture_bodies},
        "buffer": {
            "enabled": route.buffer_enabled,
            "max_requests": route.buffer_max_requests,
            "ttl_seconds": route.buffer_ttl_seconds,
        },
    }


def _inspect(body: dict[str, Any]) -> bool | None:
    """`inspect` (docs/protocol/webhooks.md §2): an object with an optional boolean `capture_bodies`, or null (off);
    None when absent."""
    if "inspect" not in body:
        return None
    value = body["inspect"]
    if value is None:
        return False
    capture = value.get("capture_bodies", False) if isinstance(value, dict) else None
    if not isinstance(value, dict) or set(value) - {"capture_bodies"} or not isinstance(capture, bool):
        raise invalid('inspect must be null or an object {"capture_bodies": true|false}')
    return capture


BUFFER_FIELDS = {"max_requests": (1, 1000, 100), "ttl_seconds": (60, 86400, 3600)}


def _buffer_changes(body: dict[str, Any]) -> dict[str, Any]:
    """The columns of the `buffer` field (docs/protocol/webhooks.md §3): an object `{"enabled": bool, "max_requests",
    "ttl_seconds"}` replacing the whole setting (omitted numbers at their defaults), or null (off); `{}` when absent."""
    if "buffer" not in body:
        return {}
    value = body["buffer"]
    if value is None:
        value = {"enabled": False}
    if not isinstance(value, dict) or set(value) - {"enabled", *BUFFER_FIELDS}:
        raise invalid('buffer must be null or an object {"enabled": …, "max_requests": …, "ttl_seconds": …}')
    if not isinstance(value.get("enabled"), bool):
        raise invalid("buffer.enabled is required and must be true or false")
    changes: dict[str, Any] = {"buffer_enabled": value["enabled"]}
    for name, (low, high, default) in BUFFER_FIELDS.items():
        number = value.get(name, default)
        if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
            raise invalid(f"buffer.{name} must be an integer between {low} and {high}")
        changes[f"buffer_{name}"] = number
    return changes


def _int(body: dict[str, Any], name: str) -> int | None:
    """An optional JSON integer; any other type makes the whole body invalid (docs/protocol/tunnels.md §2.1)."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid("Invalid request body")
    return value


def _str(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid("Invalid request body")
    return value.strip()


def _verify_changes(body: dict[str, Any], route_id: str) -> dict[str, Any]:
    """The columns of the `verify` field of a create or PUT body (docs/protocol/webhooks.md §1), the secret sealed;
    `{}` when the body has no `verify`."""
    if "verify" not in body:
        return {}
    try:
        parsed = verify.parse_field(body["verify"])
    except verify.VerifyFieldError as error:
        raise invalid(str(error)) from None
    if parsed is None:
        return {"verify_provider": "", "verify_secret_sealed": "", "verify_header": "", "verify_tolerance_seconds": 300}
    return {
        "verify_provider": parsed.provider,
        "verify_secret_sealed": verify.seal(parsed.secret, route_id),
        "verify_header": parsed.header,
        "verify_tolerance_seconds": parsed.tolerance_seconds,
    }


def _check_range(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    low, high, _ = INT_RANGES[name]
    if not low <= value <= high:
        raise invalid(f"{name} must be between {low} and {high}")
    return value


# -- create / update / delete / list / rotate ----------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedRoute:
    route: IntegrationRoute
    token: str


def route_create(*, principal: Principal, body: dict[str, Any], header_device_id: str | None) -> CreatedRoute:
    """§2.1, checks in order. In demo mode an unknown device is registered for the caller on the fly."""
    numbers = {name: _int(body, name) for name in INT_RANGES}
    device_id = _str(body, "device_id") or (header_device_id or "").strip()
    interface_type = _str(body, "interface_type")
    auth_mode = _str(body, "token_auth_mode")
    chosen_token = _str(body, "route_token")
    interface_id = _str(body, "interface_id")
    if not device_id:
        raise invalid("device_id is required")
    if not is_valid_id(device_id):
        raise invalid("Invalid device_id format")
    device = Device.objects.filter(device_id=device_id).first()
    if device is None:
        if settings.GATEWAY.auth_mode != "demo":
            raise invalid("Device not found; register the device before creating a route")
        device, _ = Device.objects.get_or_create(
            device_id=device_id,
            defaults={
                "owner_uid": principal.uid,
                "owner_email": canonical_email(principal.email),
                "display_name": device_id,
                "updated_at": _now(),
            },
        )
    if device.owner_uid != principal.uid:
        raise RouteError(403, "forbidden", "You do not own this device")
    if not INTERFACE_TYPE_RE.fullmatch(interface_type):
        raise invalid("interface_type must match ^[a-z][a-z0-9_]{0,31}$")
    if auth_mode not in ("", "path"):
        raise invalid("token_auth_mode must be 'path'")
    if len(interface_id) > INTERFACE_ID_MAX_LENGTH:
        raise invalid(f"interface_id must be at most {INTERFACE_ID_MAX_LENGTH} characters")
    values = {name: _check_range(name, numbers[name]) for name in INT_RANGES}
    route_id = tokens.new_route_id()
    verify_columns = _verify_changes(body, route_id)
    capture_bodies = _inspect(body)
    buffer_columns = _buffer_changes(body)
    if chosen_token:
        problem = tokens.token_problem(chosen_token)
        if problem:
            raise RouteError(422, "token_validation_failed", problem)
    token = chosen_token or tokens.new_token()
    now = _now()
    max_age = values["token_max_age_days"] or INT_RANGES["token_max_age_days"][2]
    with transaction.atomic():
        # Counted inside the write transaction, serialised per owner across processes (gateway_site.dblocks), so
        # concurrent creates cannot pass the limit together.
        dblocks.serialize_on(f"routes-of:{principal.uid}")
        if IntegrationRoute.objects.filter(owner_uid=principal.uid).count() >= MAX_ROUTES_PER_OWNER:
            raise RouteError(429, "route_limit_exceeded", "Maximum of 100 integration routes per owner reached")
        route = IntegrationRoute.objects.create(
            route_id=route_id,
            owner_uid=principal.uid,
            device=device,
            interface_id=interface_id,
            interface_type=interface_type,
            token_auth_mode="path",  # noqa: S106 - the auth mode's name, not a secret
            status=IntegrationRoute.PROVISIONED,
            deadline_ms=values["deadline_ms"] or INT_RANGES["deadline_ms"][2],
            max_body_bytes=values["max_body_bytes"] or INT_RANGES["max_body_bytes"][2],
            token_max_age_days=max_age,
            token_expires_at=now + timedelta(days=max_age),
            token_hash=tokens.token_hash(token),
            inspect_capture_bodies=bool(capture_bodies),
            created_at=now,
            updated_at=now,
            **verify_columns,
            **buffer_columns,
        )
    return CreatedRoute(route, token)


def _owned_route(principal: Principal | None, route_id: str) -> IntegrationRoute:
    route = IntegrationRoute.objects.filter(route_id=route_id).first()
    if route is None:
        raise RouteError(404, "route_not_found", "Route not found")
    if principal is not None and route.owner_uid != principal.uid:
        raise RouteError(403, "forbidden", "You do not own this route")
    return route


def validate_route_id(route_id: str) -> str:
    if not tokens.ROUTE_ID_RE.fullmatch(route_id):
        raise invalid("route_id is required")
    return route_id


def _save_versioned(route: IntegrationRoute, **changes: Any) -> IntegrationRoute:
    """Optimistic update: applies only if nobody changed the route since it was read (409 otherwise)."""
    changes["version"] = route.version + 1
    updated = IntegrationRoute.objects.filter(route_id=route.route_id, version=route.version).update(**changes)
    forget_snapshot(route.route_id)
    if updated != 1:
        raise RouteError(409, "version_conflict", "Route was modified concurrently; please retry")
    for name, value in changes.items():
        setattr(route, name, value)
    return route


@dataclass(frozen=True)
class UpdatedRoute:
    route: IntegrationRoute
    drop_activation: bool  # the tunnel must be told `tunnel.route_deactivated` (route_updated)


def route_update(*, principal: Principal, route_id: str, body: dict[str, Any]) -> UpdatedRoute:
    """§2.2, checks in order; the caller drops a live activation when `drop_activation`."""
    validate_route_id(route_id)
    numbers = {name: _int(body, name) for name in ("deadline_ms", "max_body_bytes")}
    device_id = _str(body, "device_id")
    auth_mode = _str(body, "token_auth_mode")
    status = _str(body, "status")
    device = None
    if device_id:
        if not is_valid_id(device_id):
            raise invalid("Invalid device_id format")
        device = Device.objects.filter(device_id=device_id).first()
        if device is None:
            raise invalid("Device not found; register the device before binding it to a route")
        if device.owner_uid != principal.uid:
            raise RouteError(403, "forbidden", "You do not own this device")
    route = _owned_route(principal, route_id)
    values = {name: _check_range(name, numbers[name]) for name in numbers}
    if auth_mode and auth_mode != "path":
        raise invalid("token_auth_mode must be 'path'")
    if status == "active":
        raise RouteError(400, "invalid_route_update", "'active' status is set via tunnel activation, not REST API")
    if status and status not in (IntegrationRoute.PROVISIONED, IntegrationRoute.INACTIVE):
        raise RouteError(400, "invalid_route_update", "status must be 'provisioned' or 'inactive'")
    capture_bodies = _inspect(body)
    changes: dict[str, Any] = {name: value for name, value in values.items() if value is not None}
    changes.update(_buffer_changes(body))
    changes.update(_verify_changes(body, route_id))
    if capture_bodies is not None:
        changes["inspect_capture_bodies"] = capture_bodies
    device_changed = device is not None and device.device_id != route.device_id
    if device is not None and device_changed:
        changes["device_id"] = device.device_id
        if route.status == IntegrationRoute.ACTIVE:
            changes["status"] = IntegrationRoute.PROVISIONED
    if status:
        changes["status"] = status
        changes["owner_disabled"] = status == IntegrationRoute.INACTIVE
    changes["updated_at"] = _now()
    route = _save_versioned(route, **changes)
    if device_changed:
        route.refresh_from_db()
    return UpdatedRoute(route, drop_activation=bool(status) or device_changed)


def route_delete(*, principal: Principal, route_id: str) -> dict[str, Any]:
    validate_route_id(route_id)
    route = _owned_route(principal, route_id)
    route.delete()
    forget_snapshot(route_id)
    return {"ok": True, "route_id": route_id, "revoked_at": rfc3339(_now())}


def route_list(*, principal: Principal, interface_type: str = "", status: str = "") -> list[dict[str, Any]]:
    routes = IntegrationRoute.objects.filter(owner_uid=principal.uid)
    if interface_type:
        routes = routes.filter(interface_type=interface_type)
    if status:
        routes = routes.filter(status=status)
    return [route_view(r) for r in routes.order_by("-created_at", "-route_id")]


@dataclass(frozen=True)
class Rotation:
    route: IntegrationRoute
    token: str

    def view(self) -> dict[str, Any]:
        body = {
            "route_id": self.route.route_id,
            "public_url": public_url(self.route.route_id, self.token),
            "route_token": self.token,
            "token_expires_at": rfc3339(self.route.token_expires_at),
        }
        if self.route.previous_token_hash and self.route.previous_token_expires_at:
            body["previous_token_expires_at"] = rfc3339(self.route.previous_token_expires_at)
        return body


def grace_from(body: dict[str, Any] | None) -> int:
    """`grace_seconds` 0-1800 (default 300 when absent); an unparsable body counts as empty
    (docs/protocol/tunnels.md §2.5), but a present, ill-typed `grace_seconds` is refused."""
    value = (body or {}).get("grace_seconds")
    if value is None:
        return 300
    if isinstance(value, bool) or not isinstance(value, int):
        # "0" from someone rotating a leaked token must not silently mean the default 300 s of grace.
        raise invalid("grace_seconds must be an integer between 0 and 1800")
    if not 0 <= value <= 1800:
        raise invalid("grace_seconds must be between 0 and 1800")
    return value


def route_token_rotate(*, principal: Principal | None, route_id: str, grace_seconds: int) -> Rotation:
    """A new current token; the old one stays valid for `grace_seconds` (0: at once invalid).

    `principal=None` is the operator (the `rotate_route_tokens` command), who may rotate any route.
    """
    validate_route_id(route_id)
    route = _owned_route(principal, route_id)
    token = tokens.new_token()
    now = _now()
    changes: dict[str, Any] = {
        "token_hash": tokens.token_hash(token),
        "token_expires_at": now + timedelta(days=route.token_max_age_days),
        "updated_at": now,
    }
    if grace_seconds > 0:
        changes["previous_token_hash"] = route.token_hash
        changes["previous_token_expires_at"] = now + timedelta(seconds=grace_seconds)
    else:
        changes["previous_token_hash"] = ""
        changes["previous_token_expires_at"] = None
    route = _save_versioned(route, **changes)
    logger.info("route token rotated", extra={"fields": {"route_id": route_id}})
    return Rotation(route, token)


def routes_to_rotate(*, route_ids: Sequence[str] = (), owner_uid: str = "", expired: bool = False) -> list[str]:
    """The route ids an operator asked for: named routes, every route of an owner, or every expired token."""
    routes = IntegrationRoute.objects.all()
    if route_ids:
        routes = routes.filter(route_id__in=list(route_ids))
    if owner_uid:
        routes = routes.filter(owner_uid=owner_uid)
    if expired:
        routes = routes.filter(token_expires_at__lte=_now())
    return list(routes.order_by("created_at", "route_id").values_list("route_id", flat=True))


def routes_rotate(
    *, route_ids: Sequence[str] = (), owner_uid: str = "", expired: bool = False, grace_seconds: int = 300
) -> list[dict[str, Any]]:
    """Rotate the selected routes; returns one `{route_id, owner_uid, public_url, …}` per changed route.

    Every named route must exist: a malformed id is 400 and an unknown one 404, naming them, and nothing is rotated.
    """
    if not (route_ids or owner_uid or expired):
        raise invalid("choose a route, an owner or expired tokens")
    malformed = [rid for rid in route_ids if not tokens.ROUTE_ID_RE.fullmatch(rid)]
    if malformed:
        raise ApiError(f"malformed route id: {', '.join(malformed)}", status=400, route_ids=malformed)
    if route_ids:
        known = set(IntegrationRoute.objects.filter(route_id__in=list(route_ids)).values_list("route_id", flat=True))
        unknown = [rid for rid in route_ids if rid not in known]
        if unknown:
            raise ApiError(f"unknown route: {', '.join(unknown)}", status=404, route_ids=unknown)
    changed = []
    for rid in routes_to_rotate(route_ids=route_ids, owner_uid=owner_uid, expired=expired):
        rotation = route_token_rotate(principal=None, route_id=rid, grace_seconds=grace_seconds)
        changed.append({"owner_uid": rotation.route.owner_uid, **rotation.view()})
    return changed


# -- activation (docs/protocol/tunnels.md §3.2) ------------------------------------------------------------------------


def activation_check(*, route_id: str, owner_uid: str, device_id: str) -> dict[str, Any] | None:
    """None when the route may be activated on this tunnel, else the rejection result."""

    def rejected(code: str, message: str) -> dict[str, Any]:
        return {"route_id": route_id, "status": "rejected", "error": {"code": code, "message": message}}

    route = IntegrationRoute.objects.filter(route_id=route_id).first()
    if route is None:
        return rejected("route_not_found", "Route not found")
    if route.owner_uid != owner_uid:
        return rejected("route_not_owned", "Route not owned by authenticated user")
    if route.device_id != device_id:
        return rejected("device_mismatch", "Route is bound to a different device")
    # Two hardenings of the upstream (docs/protocol/tunnels.md §9): a route its owner disabled stays disabled across
    # tunnel reconnects, and a route whose token expired does not claim to be live while ingress answers 404.
    if route.status == IntegrationRoute.INACTIVE and route.owner_disabled:
        return rejected("route_inactive", "Route is inactive; set its status to provisioned to allow activation")
    if route.token_expires_at <= _now():
        return rejected("token_expired", "Route token has expired; rotate it")
    return None


def route_ids_of_device(device_id: str) -> list[str]:
    return list(IntegrationRoute.objects.filter(device_id=device_id).values_list("route_id", flat=True))


def set_status(route_id: str, status: str) -> None:
    IntegrationRoute.objects.filter(route_id=route_id).update(status=status, updated_at=_now())
    forget_snapshot(route_id)


def routes_provisioned(route_ids: list[str]) -> None:
    """A tunnel went away: its active routes fall back to `provisioned`."""
    if route_ids:
        IntegrationRoute.objects.filter(route_id__in=route_ids, status=IntegrationRoute.ACTIVE).update(
            status=IntegrationRoute.PROVISIONED, updated_at=_now()
        )
        for route_id in route_ids:
            forget_snapshot(route_id)


# -- ingress (docs/protocol/tunnels.md §4) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class IngressRoute:
    route_id: str
    device_id: str
    owner_uid: str
    deadline_ms: int
    max_body_bytes: int
    active: bool
    verify: dict[str, Any] | None = None  # the snapshot's sealed `verify` part (tunnels.verify.check)
    capture_bodies: bool = False
    buffer: dict[str, int] | None = None  # {"max_requests", "ttl_seconds"} when buffering is on (webhooks.md §3)


class IngressRefused(PlainError):
    """Ingress refuses the webhook with this status, answered as plain text (docs/protocol/tunnels.md §4)."""


# Ingress reads routes from a short-lived snapshot in a key/value store (gateway_site.kvstore) instead of the database
# on every webhook. Every write below drops the snapshot; the store is shared by every process in Redis mode, so a
# rotation, deletion or deactivation counts at once everywhere. In memory mode the short TTL bounds how long another
# process could see an older one.
INTERFACE_ID_MAX_LENGTH = 255  # the stored column's size: checked here so every database behaves the same
SNAPSHOT_TTL_SECONDS = 5
MAX_SNAPSHOTS = 50_000  # route ids are checked against their grammar first, but any well-formed id can be asked for


def _snapshots() -> KeyValueStore:
    return kv_store("route-snapshots", ttl=SNAPSHOT_TTL_SECONDS, max_entries=MAX_SNAPSHOTS)


def forget_snapshot(route_id: str) -> None:
    """Drop the route's snapshot (sync code: a worker thread or a database signal handler)."""
    blocking(_snapshots()).delete(route_id)


async def snapshot_forget(route_id: str) -> None:
    """`forget_snapshot` for async code."""
    await _snapshots().delete(route_id)


def route_row_deleted(sender: Any, *, instance: IntegrationRoute, **kwargs: Any) -> None:
    """`post_delete` of a route row: forget its snapshot."""
    forget_snapshot(instance.route_id)


def read_snapshot(route_id: str) -> dict[str, Any]:
    """What ingress needs of the route, read from the database; `{}` when it does not exist."""
    route = IntegrationRoute.objects.filter(route_id=route_id).first()
    if route is None:
        return {}
    return {
        "route_id": route.route_id,
        "device_id": route.device_id,
        "owner_uid": route.owner_uid,
        "status": route.status,
        "token_hash": route.token_hash,
        "previous_token_hash": route.previous_token_hash,
        "previous_token_expires_at": route.previous_token_expires_at.timestamp()
        if route.previous_token_expires_at
        else 0,
        "token_expires_at": route.token_expires_at.timestamp(),
        "deadline_ms": route.deadline_ms,
        "max_body_bytes": route.max_body_bytes,
        "operator_disabled": route.operator_disabled,
        # Sealed: the plaintext secret never enters the shared store (docs/protocol/webhooks.md §1).
        "verify": verify.snapshot_part(
            route.verify_provider, route.verify_secret_sealed, route.verify_header, route.verify_tolerance_seconds
        ),
        "capture_bodies": route.inspect_capture_bodies,
        "buffer": {"max_requests": route.buffer_max_requests, "ttl_seconds": route.buffer_ttl_seconds}
        if route.buffer_enabled
        else None,
    }


async def ingress_snapshot(route_id: str) -> dict[str, Any]:
    """The route's snapshot (`{}` for a route known not to exist): cached, or read from the database in a worker
    thread and cached."""
    store = _snapshots()
    cached = await store.get(route_id)
    if isinstance(cached, dict):
        return cached
    snapshot = await sync_to_async(read_snapshot)(route_id)
    await store.set(route_id, snapshot)
    return snapshot


def ingress_check(snapshot: dict[str, Any], token: str) -> IngressRoute:
    """Steps 3-5 of docs/protocol/tunnels.md §4: the route, its token (constant time, current or previous in grace),
    and the token's expiry. Whether the route is active is checked later (step 9)."""
    if not snapshot or not token:
        raise IngressRefused(404)
    presented = tokens.token_hash(token)
    now = _now().timestamp()
    current = tokens.hashes_equal(presented, snapshot["token_hash"])
    previous = (
        snapshot["previous_token_expires_at"] > 0
        and now <= snapshot["previous_token_expires_at"]
        and tokens.hashes_equal(presented, snapshot["previous_token_hash"])
    )
    if not (current or previous):
        raise IngressRefused(404)
    if now > snapshot["token_expires_at"]:
        raise IngressRefused(404)
    return ingress_route(snapshot)


def ingress_route(snapshot: dict[str, Any]) -> IngressRoute:
    """What ingress needs of an existing route's snapshot (its token already checked, or not needed: a replay)."""
    return IngressRoute(
        snapshot["route_id"],
        snapshot["device_id"],
        snapshot["owner_uid"],
        snapshot["deadline_ms"],
        snapshot["max_body_bytes"],
        # A route an operator disabled answers as an inactive one (503, docs/protocol/tunnels.md §4).
        snapshot["status"] == IntegrationRoute.ACTIVE and not snapshot.get("operator_disabled"),
        snapshot.get("verify"),
        bool(snapshot.get("capture_bodies")),
        snapshot.get("buffer"),
    )


def ingress_mark_used(route_id: str) -> None:
    now = _now()
    IntegrationRoute.objects.filter(route_id=route_id).update(token_last_used_at=now, updated_at=now)


async def ingress_mark_used_soon(route_id: str) -> None:
    """Record `token_last_used_at`, at most once per second per route (across the processes sharing the store): a
    database write per webhook would cap the ingress at the database's write rate, and the field has whole-second
    precision anyway."""
    if await kv_store("route-used", ttl=1, max_entries=MAX_SNAPSHOTS).add(route_id):
        asyncio.ensure_future(sync_to_async(ingress_mark_used)(route_id))


# Answers per route, for operators (docs/operations.md): one counter per route, UTC day and class of status, in a
# key/value store every process shares. Ingress adds one increment per answered webhook, after the answer is sent.
ANSWER_CLASSES = ("2xx", "4xx", "5xx", "429")
ANSWER_COUNTER_TTL_SECONDS = 2 * 86400


def _answers() -> KeyValueStore:
    return kv_store("route-answers", ttl=ANSWER_COUNTER_TTL_SECONDS, max_entries=4 * MAX_SNAPSHOTS)


def answer_class(status: int) -> str | None:
    """The counter an answer with `status` goes to: 429 on its own, then 2xx, 4xx, 5xx; None for others."""
    if status == 429:
        return "429"
    return {2: "2xx", 4: "4xx", 5: "5xx"}.get(status // 100)


def _answer_day(now: float | None = None) -> str:
    return time.strftime("%Y%m%d", time.gmtime(time.time() if now is None else now))


async def ingress_count(route_id: str, status: int) -> None:
    """Count one answer of the route's (a webhook whose token was accepted)."""
    kind = answer_class(status)
    if kind is not None:
        await _answers().incr(f"{route_id}:{_answer_day()}:{kind}")


async def route_answer_counts(route_id: str) -> dict[str, int]:
    """Today's (UTC) answers of the route, by class."""
    store, day = _answers(), _answer_day()
    values = await asyncio.gather(*(store.get(f"{route_id}:{day}:{kind}") for kind in ANSWER_CLASSES))
    return {kind: int(value or 0) for kind, value in zip(ANSWER_CLASSES, values, strict=True)}


def route_operator_disable(route_id: str, *, disabled: bool) -> IntegrationRoute:
    """An operator disables (or enables again) the route: ingress answers its webhooks with 503 while it is disabled;
    its tunnel keeps the activation. Raises NotFound for an unknown route."""
    route = IntegrationRoute.objects.filter(route_id=route_id).first()
    if route is None:
        raise NotFound(f"unknown route: {route_id}")
    if route.operator_disabled != disabled:
        route = _save_versioned(route, operator_disabled=disabled, updated_at=_now())
    else:
        forget_snapshot(route_id)
    logger.info("route disabled" if disabled else "route enabled", extra={"fields": {"route_id": route_id}})
    return route


def routes_operator_disable_of_owner(owner_uid: str) -> list[str]:
    """Every route of `owner_uid` is disabled (operator revoke); returns the ids of those that were not already."""
    ids = list(
        IntegrationRoute.objects.filter(owner_uid=owner_uid, operator_disabled=False).values_list("route_id", flat=True)
    )
    IntegrationRoute.objects.filter(route_id__in=ids).update(
        operator_disabled=True, version=F("version") + 1, updated_at=_now()
    )
    for route_id in ids:
        forget_snapshot(route_id)
    return ids


# Webhooks in flight have a share per route and per owner (decisions.md H3), counted across every process as leases
# (gateway_site.leases); a lease outlives the route's deadline by this margin, so one whose process died lapses.
INFLIGHT_LEASE_MARGIN_SECONDS = 5


def _inflight_keys(route: IngressRoute) -> tuple[str, str]:
    return f"inflight-route:{route.route_id}", f"inflight-owner:{route.owner_uid}"


async def inflight_claim(route: IngressRoute, request_id: str) -> str | None:
    """Take a place for one webhook in its route's and its owner's share; returns the share that is used up
    ("route" or "owner"), or None once both places are held (release them with `inflight_release`)."""
    config = settings.GATEWAY
    ttl = route.deadline_ms / 1000 + INFLIGHT_LEASE_MARGIN_SECONDS
    per_route, per_owner = _inflight_keys(route)
    if not await leases.acquire(per_route, config.max_inflight_per_route, request_id, ttl):
        return "route"
    if not await leases.acquire(per_owner, config.max_inflight_per_owner, request_id, ttl):
        await leases.release(per_route, request_id)
        return "owner"
    return None


async def inflight_release(route: IngressRoute, request_id: str) -> None:
    for key in _inflight_keys(route):
        await leases.release(key, request_id)


def health_counts(principal: Principal) -> dict[str, int]:
    """`routes` of the caller; node-wide `tunnels` and `inflight`."""
    from tunnels.registry import inflight, tunnels

    return {
        "routes": IntegrationRoute.objects.filter(owner_uid=principal.uid).count(),
        "tunnels": tunnels.count(),
        "inflight": inflight.count(),
    }


def metrics_gauges() -> dict[str, float]:
    """The tunnels' live gauge of /metrics (gateway_site.metrics): this process's tunnel sockets."""
    from tunnels.registry import tunnels

    return {"tunnels_connected": tunnels.count()}
