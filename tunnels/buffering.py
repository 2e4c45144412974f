"""Offline buffering (docs/protocol/webhooks.md §3): webhooks for a route with `buffer` on are stored while no tunnel
can take them, answered `202`, and delivered in arrival order once a tunnel activates the route.

- **Storing** (`accept`, from ingress once every check passed): the request is kept as the `tunnel.request` frame it
  would have been sent as (tunnels.buffer), sealed with AES-GCM under a key derived from JWT_SIGNING_KEY and bound
  to the route (tunnels.verify.seal): the frame carries the route token and the sender's headers. A frame that no
  longer opens (the key changed) is dropped as expired. While the route's buffer is not empty, new webhooks join
  its tail even with a tunnel connected, so they stay behind the stored ones.
- **Draining** (`kick`): one task, in whichever process, holds the route's lock and sends the entries one at a time
  through the ordinary delivery (tunnels.ingress.deliver). A drain starts when a tunnel activates the route and after
  every webhook stored while the route is dispatchable; it goes on until the buffer is empty.
- **Outcomes.** The tunnel answered: the entry goes and its record becomes `delivered` with the answer. The tunnel
  did not answer within the route's deadline: the entry goes and its record becomes `rejected` with 504 (a request
  that never gets an answer cannot hold up the ones behind it). The request could not be sent or the tunnel went
  away before answering: the entry stays at the head and the drain stops; the next activation or webhook starts
  it again, so such an entry may reach the tunnel twice (delivery is at least once).
- **Expiry**: see tunnels.buffer; an expired entry's record becomes `rejected` with status 410.
- **Records.** Ingress writes a buffered webhook's record after its `202` went out, and a drain already running may
  deliver the entry before that: the outcome then waits in a key/value store (shared in Redis mode) for ingress to
  apply when it writes the record (`record_saved`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any

from django.conf import settings

from gateway_site import asgi_http
from gateway_site.errors import JSON_CONTENT_TYPE, PlainError
from gateway_site.kvstore import KeyValueStore, kv_store
from tunnels import buffer, delivery, ingress, inspector, services, verify

logger = logging.getLogger("gateway.tunnels")

_tasks: set[asyncio.Task[None]] = set()
SEALED = "sealed"  # the stored frame's one key
SEAL_PURPOSE = "buffered-webhook"
clock = time.time  # the wall clock of stored entries' expiry (a test may move it)
# Outcomes reached before their record was written (`_settle`), kept briefly for ingress to apply (`record_saved`).
OUTCOME_TTL_SECONDS = 60
MAX_EARLY_OUTCOMES = 10_000


async def waiting(route_id: str) -> bool:
    """Whether the route has stored webhooks, which a new one must queue behind."""
    return await buffer.store().count(route_id) > 0


async def accept(
    send: Any, scope: dict[str, Any], route: services.IngressRoute, body: bytes, outcome: inspector.Outcome
) -> None:
    """Store the webhook and answer `202 {"status":"buffered","request_id":…}`, or `503` when the buffer is full."""
    assert route.buffer is not None
    now = clock()
    record_id = inspector.new_request_id()
    frame = ingress.request_frame(scope, route, "", body)
    for name in ("request_id", "deadline_ms"):  # set when it is delivered
        del frame[name]
    # Sealed at rest (AES-GCM, bound to the route): the frame holds the route token in its path and whatever
    # credentials the sender put in its headers and body, and in Redis mode it waits outside the process.
    text = json.dumps(frame, separators=(",", ":"))
    sealed = {SEALED: verify.seal(text, route.route_id, purpose=SEAL_PURPOSE)}
    entry = buffer.Entry(record_id, now + route.buffer["ttl_seconds"], len(body), sealed)
    pushed = await buffer.store().push(route.route_id, entry, max_requests=route.buffer["max_requests"], now=now)
    if pushed.stored:
        outcome.record_id, outcome.buffered = record_id, True
        answer = json.dumps({"status": "buffered", "request_id": record_id}, separators=(",", ":")).encode()
        await asgi_http.respond(send, scope, 202, answer, JSON_CONTENT_TYPE, ingress.SANDBOX_HEADERS)
    else:
        await asgi_http.respond_error(send, scope, PlainError(503), ingress.SANDBOX_HEADERS)
    for route_id, request_id in pushed.expired:
        await _expired(route_id, request_id)


def kick(route_id: str) -> None:
    """Start draining the route in the background (nothing happens when another drain holds it)."""
    task = asyncio.ensure_future(drain(route_id))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def drain(route_id: str) -> None:
    try:
        await _drain(route_id)
    except Exception:  # a Redis outage, say: the entries stay for the next drain
        logger.warning("buffered webhooks not delivered", exc_info=True, extra={"fields": {"route_id": route_id}})


async def _drain(route_id: str) -> None:
    store = buffer.store()
    # Checked again after every unlock: a webhook stored while the last holder was finishing is not left behind.
    while await store.count(route_id):
        token = secrets.token_hex(16)
        if not await store.lock(route_id, token, buffer.LOCK_SECONDS):
            return  # another drain holds the route; it checks again when it lets go
        try:
            finished = await _drain_locked(store, route_id, token)
        finally:
            await store.unlock(route_id, token)
        if not finished:
            return


async def _drain_locked(store: buffer.BufferStore, route_id: str, token: str) -> bool:
    """Deliver the route's entries while the lock is held; False when delivery stopped with entries left."""
    while await store.renew(route_id, token, buffer.LOCK_SECONDS):
        for request_id in await store.expire(route_id, clock()):
            await _expired(route_id, request_id)
        entry = await store.head(route_id)
        if entry is None:
            return True
        snapshot = await services.ingress_snapshot(route_id)
        if not snapshot:  # the route was deleted: its records can no longer be read
            await store.drop_route(route_id)
            return True
        route = services.ingress_route(snapshot)
        target = await delivery.route_target(route_id) if route.active else None
        if target is None:
            return False
        frame = opened(entry, route_id)
        if frame is None:  # sealed under another JWT_SIGNING_KEY: it can never be sent
            await store.remove(route_id, entry.request_id)
            await _expired(route_id, entry.request_id)
            continue
        outcome = inspector.Outcome()
        answered = await _deliver(outcome, route, target, frame)
        if not answered and outcome.status != 504:
            return False  # not sent, or the tunnel went away: kept at the head for the next drain
        await store.remove(route_id, entry.request_id)
        changes = {
            "delivery": "delivered" if answered else "rejected",
            "status": outcome.status,
            "response": inspector.response_of(outcome),
            "duration_ms": max(0, round((time.monotonic() - outcome.clock) * 1000)),
        }
        if answered:
            changes["delivered_at"] = inspector.received_at(time.time())
        await _settle(route_id, entry.request_id, changes)
    return False  # the lock lapsed: whoever holds it now goes on


def opened(entry: buffer.Entry, route_id: str) -> dict[str, Any] | None:
    """The stored frame, unsealed; None when it cannot be opened (the signing key changed since it was stored)."""
    text = verify.unseal(str(entry.frame.get(SEALED) or ""), route_id, purpose=SEAL_PURPOSE)
    if text is None:
        logger.warning("buffered webhook cannot be opened", extra={"fields": {"route_id": route_id}})
        return None
    frame: dict[str, Any] = json.loads(text)
    return frame


async def _deliver(
    outcome: inspector.Outcome, route: services.IngressRoute, target: str, frame: dict[str, Any]
) -> bool:
    """Send the stored frame through the ordinary delivery; its answer is noted in `outcome`."""

    async def capture(message: dict[str, Any]) -> None:
        outcome.see(message)

    scope = {"type": "http", "method": frame.get("method", "POST"), "path": frame.get("path", "/")}
    return await ingress.deliver(capture, {**scope, "headers": []}, route, target, b"", frame=frame)


async def _settle(route_id: str, request_id: str, changes: dict[str, Any]) -> None:
    """The record of a buffered webhook gets its final outcome (docs/protocol/webhooks.md §3); a failure is logged."""
    if not settings.GATEWAY_INSPECTOR_ENABLED:
        return
    try:
        log = inspector.request_log()
        record = await log.get(route_id, request_id)
        if record is None:
            # Not written yet (ingress records a webhook after its answer) or no longer kept: leave the outcome for
            # `record_saved`, then look once more, so that whichever of the two comes last applies it.
            await _outcomes().set(request_id, changes)
            record = await log.get(route_id, request_id)
        if record is None or record.get("delivery") != "buffered":
            return
        await inspector.update(route_id, {**record, **changes})
    except Exception:
        logger.warning("buffered webhook record not updated", exc_info=True, extra={"fields": {"route_id": route_id}})


def _outcomes() -> KeyValueStore:
    return kv_store("buffer-outcomes", ttl=OUTCOME_TTL_SECONDS, max_entries=MAX_EARLY_OUTCOMES)


async def record_saved(route_id: str, record: dict[str, Any]) -> None:
    """Ingress wrote the record of a buffered webhook: apply an outcome its drain reached before that."""
    changes = await _outcomes().get(record["request_id"])
    if isinstance(changes, dict):
        await inspector.update(route_id, {**record, **changes})


async def _expired(route_id: str, request_id: str) -> None:
    expired = {"status": 410, "headers": {}, "body_size": 0}
    await _settle(route_id, request_id, {"delivery": "rejected", "status": 410, "response": expired})
