"""The request inspector (docs/protocol/webhooks.md §2): every webhook a route accepted the token of is recorded,
newest first, with its secrets redacted; the body is kept only when the route captures bodies.

Records live in a `RequestLog`: `MemoryRequestLog` here (one process), `tunnels.inspector_redis.RedisRequestLog`
with STATE_BACKEND=redis (every process sees the same records). Both keep the same bounds:

- per route the `MAX_RECORDS` most recent records; a stored body is at most `MAX_BODY_BYTES`, so a route's bodies
  never exceed 100 x 64 KiB = 6.25 MiB, inside the 8 MiB of the contract;
- all routes together at most `MAX_TOTAL_BYTES` of stored records (their JSON text, bodies included): past it the
  records of the route written least recently are dropped whole, so many routes cannot exhaust the memory.

New and changed records are announced on the channel layer group of their route (`events_group`), which is shared
by every process in Redis mode; the events stream (tunnels.inspector_stream) listens there.
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.conf import settings

from gateway_site import asgi_http

logger = logging.getLogger("gateway.tunnels")

REDACTED = "[redacted]"
# Credentials and the signature headers of docs/protocol/webhooks.md §1; a route's own `hmac_sha256` header is added
# per record (`record_headers(signature_header=…)`).
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "cookie",
        "proxy-authorization",
        "x-hub-signature-256",
        "stripe-signature",
        "x-slack-signature",
    }
)
MAX_RECORDS = 100
MAX_BODY_BYTES = 64 * 1024
MAX_TOTAL_BYTES = 64 * 1024 * 1024
REQUEST_ID_PREFIX = "rq_"


def new_request_id() -> str:
    return REQUEST_ID_PREFIX + secrets.token_hex(16)


def is_request_id(value: str) -> bool:
    tail = value.removeprefix(REQUEST_ID_PREFIX)
    return value.startswith(REQUEST_ID_PREFIX) and len(tail) == 32 and all(c in "0123456789abcdef" for c in tail)


_second_text: tuple[int, str] = (-1, "")  # the last second formatted, reused by the records within it


def received_at(unix: float) -> str:
    """RFC 3339 in UTC with milliseconds: `2026-12-04T10:00:00.123Z`."""
    global _second_text
    millis = int(unix * 1000)
    second, text = _second_text
    if millis // 1000 != second:
        second = millis // 1000
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second_text = (second, text)
    return f"{text}.{millis % 1000:03d}Z"


def _scrub(text: str, token: str) -> str:
    return text.replace(token, REDACTED) if token and token in text else text


def record_headers(
    raw: Iterable[tuple[bytes, bytes]], *, token: str = "", signature_header: str = ""
) -> dict[str, str]:
    """Lower-cased names; repeated names joined with `, `; secrets replaced by `[redacted]`, and the route token
    scrubbed from every other value (a proxy in front may copy the path into a header)."""
    secret = SECRET_HEADERS | ({signature_header.lower()} if signature_header else set())
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        name = raw_name.decode("latin-1").lower()
        value = REDACTED if name in secret else _scrub(raw_value.decode("latin-1"), token)
        headers[name] = f"{headers[name]}, {value}" if name in headers and value != REDACTED else value
    return headers


@dataclass
class Outcome:
    """What one webhook (or replay) came to: the answer the gateway sent and whether the tunnel gave it."""

    started: float = field(default_factory=time.time)
    clock: float = field(default_factory=time.monotonic)
    status: int = 0
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    response_body_size: int = 0
    answered: bool = False  # the tunnel answered (delivery `live`), else the gateway refused it (`rejected`)
    body: bytes | None = None  # the body as read; None when the request was refused before reading it
    verified: bool | None = None  # its signature held (True) or not (False); None when the route checks none (§1)
    record_id: str = ""  # the record's id when chosen before the answer (a buffered webhook's, §3)
    buffered: bool = False  # stored for later delivery (delivery `buffered`, §3)

    def see(self, message: dict[str, Any]) -> None:
        """Note an ASGI response message on its way out."""
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            self.response_headers = list(message.get("headers") or ())
        elif message["type"] == "http.response.body":
            self.response_body_size += len(message.get("body") or b"")


# The gateway's own headers on every answer say nothing about the webhook's.
_UNRECORDED_RESPONSE_HEADERS = frozenset(
    {"content-length", "content-security-policy", "vary"} | {name.decode() for name, _ in asgi_http.SECURITY_HEADERS}
)


def _recorded_response_header(name: str) -> bool:
    return name not in _UNRECORDED_RESPONSE_HEADERS and not name.startswith("access-control-")


class Pending:
    """A record of docs/protocol/webhooks.md §2 taken but not built: what `build` needs, taken at once (headers already
    redacted, the body kept only when the route captures it), so that a record nobody reads costs little more than
    this object. The memory store keeps it until the record is first read (`MemoryRequestLog`)."""

    __slots__ = (
        "request_id",
        "started",
        "method",
        "query",
        "headers",
        "body_size",
        "kept_body",
        "body_truncated",
        "verified",
        "delivery",
        "status",
        "duration_ms",
        "response_headers",
        "response_body_size",
        "replay_of",
    )

    def __init__(
        self,
        *,
        method: str,
        query: str,
        headers: dict[str, str],
        declared_size: int,
        outcome: Outcome,
        capture_bodies: bool,
        token: str = "",
        replay_of: str | None = None,
    ) -> None:
        body = outcome.body
        self.request_id = outcome.record_id or new_request_id()
        self.started = outcome.started
        self.method = method
        self.query = _scrub(query, token)  # the route token is scrubbed now, never kept
        self.headers = headers
        self.body_size = len(body) if body is not None else declared_size
        captured = body if capture_bodies else None
        self.body_truncated = captured is not None and len(captured) > MAX_BODY_BYTES
        # A captured body has the route token replaced like the rest (a GitHub `ping` carries the hook's URL).
        self.kept_body = _scrub_bytes(captured, token) if captured is not None and not self.body_truncated else None
        self.verified = outcome.verified
        self.delivery = "buffered" if outcome.buffered else "live" if outcome.answered else "rejected"
        self.status = outcome.status
        self.duration_ms = max(0, round((time.monotonic() - outcome.clock) * 1000))
        self.response_headers = outcome.response_headers
        self.response_body_size = outcome.response_body_size
        self.replay_of = replay_of

    def size_hint(self) -> int:
        """About the size of the built record's JSON text, from its parts (exact once built: `stored_size`)."""
        size = _RECORD_BASE_SIZE + len(self.query)
        for name, value in self.headers.items():
            size += len(name) + len(value) + 6
        for raw_name, raw_value in self.response_headers:
            size += len(raw_name) + len(raw_value) + 6
        if self.kept_body is not None:
            size += (len(self.kept_body) + 2) // 3 * 4 + 16
        return size

    def build(self) -> dict[str, Any]:
        """The record; `body_size` is the size that arrived."""
        record: dict[str, Any] = {
            "request_id": self.request_id,
            "received_at": received_at(self.started),
            "method": self.method,
            "query": self.query,
            "headers": self.headers,
            "body_size": self.body_size,
        }
        if self.kept_body is not None:
            record["body_base64"] = base64.b64encode(self.kept_body).decode()
        elif self.body_truncated:
            record["body_truncated"] = True
        record.update(
            verified=self.verified,
            delivery=self.delivery,
            status=self.status,
            duration_ms=self.duration_ms,
            response=_response(self.status, self.response_headers, self.response_body_size),
            replay_of=self.replay_of,
        )
        return record


# What a record's JSON text takes besides its query, headers and body (its keys, id, time, numbers; generous).
_RECORD_BASE_SIZE = 320


def _scrub_bytes(body: bytes, token: str) -> bytes:
    secret = token.encode()
    return body.replace(secret, REDACTED.encode()) if secret and secret in body else body


def response_of(outcome: Outcome) -> dict[str, Any]:
    """A record's `response` for the answer in `outcome` (the recorded headers only)."""
    return _response(outcome.status, outcome.response_headers, outcome.response_body_size)


def _response(status: int, raw_headers: list[tuple[bytes, bytes]], body_size: int) -> dict[str, Any]:
    headers = {}
    for raw_name, raw_value in raw_headers:
        name = raw_name.decode("latin-1").lower()
        if _recorded_response_header(name):
            headers[name] = raw_value.decode("latin-1")
    return {"status": status, "headers": headers, "body_size": body_size}


def replay_body(record: dict[str, Any]) -> bytes | None:
    """The body a replay sends: the captured one, or an empty body that arrived (fully known without capture); None
    when the body is unknown (not captured, too large, or never read)."""
    if "body_base64" in record:
        return base64.b64decode(record["body_base64"])
    if record.get("body_size") == 0 and not record.get("body_truncated"):
        return b""
    return None


# The size a record counts for against MAX_TOTAL_BYTES: its compact JSON text, ASCII (escaped) so its length in
# characters is its length in bytes.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def stored_size(record: dict[str, Any]) -> int:
    return len(_COMPACT_JSON.encode(record))


# -- the store ---------------------------------------------------------------------------------------------------------


class RequestLog(Protocol):
    async def append(self, route_id: str, record: dict[str, Any]) -> None:
        """Add `record` as the route's newest, dropping what falls outside the bounds."""
        ...

    async def recent(self, route_id: str, limit: int) -> list[dict[str, Any]]:
        """The route's `limit` newest records, newest first."""
        ...

    async def get(self, route_id: str, request_id: str) -> dict[str, Any] | None: ...

    async def update(self, route_id: str, record: dict[str, Any]) -> bool:
        """Replace the route's record of the same `request_id` where it stands; False when it is gone."""
        ...

    async def count(self, route_id: str) -> int:
        """How many records the route has."""
        ...


def _request_id(record: dict[str, Any] | Pending) -> str:
    return record.request_id if isinstance(record, Pending) else record["request_id"]


class MemoryRequestLog:
    """Records in this process: per route a bounded deque, routes ordered by their last write. A record can arrive
    `Pending`: it is built when it is first read, and counts for its `size_hint` until then, its exact size after."""

    def __init__(self, *, max_records: int = MAX_RECORDS, max_total_bytes: int = MAX_TOTAL_BYTES) -> None:
        self.max_records = max_records
        self.max_total_bytes = max_total_bytes
        self._total = 0
        self._routes: collections.OrderedDict[str, collections.deque[tuple[dict[str, Any] | Pending, int]]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()

    async def append(self, route_id: str, record: dict[str, Any] | Pending) -> None:
        size = record.size_hint() if isinstance(record, Pending) else stored_size(record)
        with self._lock:
            records = self._routes.pop(route_id, None) or collections.deque()
            self._routes[route_id] = records  # now the most recently written
            records.appendleft((record, size))
            self._total += size
            while len(records) > self.max_records:
                self._total -= records.pop()[1]
            while self._total > self.max_total_bytes:
                oldest = next(iter(self._routes))
                if oldest == route_id:
                    break
                self._total -= sum(s for _, s in self._routes.pop(oldest))

    def _built(self, records: collections.deque[tuple[dict[str, Any] | Pending, int]], index: int) -> dict[str, Any]:
        """The record at `index`, built (and kept built) if it was pending; called with the lock held."""
        record, size = records[index]
        if isinstance(record, Pending):
            record = record.build()
            exact = stored_size(record)
            records[index] = (record, exact)
            self._total += exact - size
        return record

    async def recent(self, route_id: str, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            records = self._routes.get(route_id)
            if records is None:
                return []
            return [self._built(records, index) for index in range(min(limit, len(records)))]

    async def stored_bytes(self) -> int:
        return self._total

    async def update(self, route_id: str, record: dict[str, Any]) -> bool:
        size = stored_size(record)
        with self._lock:
            records = self._routes.get(route_id, ())
            for index, (old, old_size) in enumerate(records):
                if _request_id(old) == record["request_id"]:
                    records[index] = (record, size)  # type: ignore[index]
                    self._total += size - old_size
                    return True
        return False

    async def count(self, route_id: str) -> int:
        with self._lock:
            return len(self._routes.get(route_id, ()))

    async def get(self, route_id: str, request_id: str) -> dict[str, Any] | None:
        with self._lock:
            records = self._routes.get(route_id)
            for index, (record, _) in enumerate(records or ()):
                if _request_id(record) == request_id:
                    return self._built(records, index)  # type: ignore[arg-type]
        return None


_log: list[RequestLog] = []


def request_log() -> RequestLog:
    """This process's store: in Redis when the state is shared (docs/scaling.md)."""
    if not _log:
        if settings.GATEWAY.state_backend == "redis":
            from tunnels.inspector_redis import RedisRequestLog

            _log.append(RedisRequestLog())
        else:
            _log.append(MemoryRequestLog())
    return _log[0]


def events_group(route_id: str) -> str:
    return f"inspect.{route_id}"


# The event streams open in this process, per route (weakly held: a stream that is gone never counts). Without shared
# state they are the only listeners there can be, so a record nobody follows is not announced at all.
_listeners: dict[str, weakref.WeakSet[Any]] = {}


def listen(route_id: str, stream: Any) -> None:
    _listeners.setdefault(route_id, weakref.WeakSet()).add(stream)


def unlisten(route_id: str, stream: Any) -> None:
    streams = _listeners.get(route_id)
    if streams is not None:
        streams.discard(stream)
        if not streams:
            del _listeners[route_id]


def followed(route_id: str) -> bool:
    """Whether a record of the route may have a listener: one of this process's streams, or with shared state
    (STATE_BACKEND=redis) a stream of any process."""
    return settings.GATEWAY.state_backend == "redis" or bool(_listeners.get(route_id))


async def publish(route_id: str, record: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is not None and followed(route_id):
        await layer.group_send(events_group(route_id), {"type": "inspector.request", "record": record})


async def save(route_id: str, record: dict[str, Any] | Pending) -> None:
    """Store the record and announce it. A `Pending` one is built now only when something needs it at once (a store
    outside this process, or a listener); otherwise it waits in memory until it is first read."""
    log = request_log()
    if isinstance(record, Pending):
        if isinstance(log, MemoryRequestLog) and not followed(route_id):
            await log.append(route_id, record)
            return
        record = record.build()
    await log.append(route_id, record)
    await publish(route_id, record)


async def update(route_id: str, record: dict[str, Any]) -> None:
    """Store the changed record (a buffered webhook delivered or expired, §3) and announce it; nothing when the
    record is no longer kept."""
    if await request_log().update(route_id, record):
        await publish(route_id, record)
