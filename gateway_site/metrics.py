"""Prometheus metrics of this process (docs/operations.md): the families, the calls that count, the live gauges.

Everything lives on a registry of our own (`registry()`), never on prometheus_client's global one, with the process,
platform and garbage-collector collectors added to it. Every sample carries the label `node` = NODE_ID, so the
processes of one deployment (docs/scaling.md) stay apart even when one scrape address reaches several of them.

Counting is cheap on purpose, since the relay's hot path counts every frame (docs/performance.md, "Cost of the
metrics"): the label children are bound once, in `configure()`; a call below checks one global, then adds under the
child's lock, and allocates nothing. No label value comes from a request except the HTTP method (mapped onto a fixed
set) and the status code: never a path, a token, an email or a body.

Gauges of live state (agent and tunnel sockets, event streams, sessions) are not counted up and down on the hot
path: `refresh_live()` reads them from their registries and stores when /metrics is scraped and when the history
samples (gateway_site.metrics_history). The apps provide them through settings.GATEWAY_METRICS_PROVIDERS (this
package imports no app); the event streams are counted here, from the live connections gateway_site.lifecycle tracks.

With METRICS_ENABLED=false nothing is bound and every call returns at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

logger = logging.getLogger("gateway.metrics")

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # the text exposition format every Prometheus reads

A2C = "agent_to_client"
C2A = "client_to_agent"
DIRECTIONS = (A2C, C2A)
STREAM_KINDS = ("session", "devices")
RATE_LIMIT_SCOPES = ("global", "ip", "route", "oauth")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
HANDSHAKE_RESULTS = ("ok", "failed")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"

# Seconds. A frame in one process takes well under a millisecond; across processes (Redis mode) up to the 2 s bound of
# a request to another process's inbox (docs/architecture.md, "Delivery across processes").
RELAY_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# A webhook waits for its tunnel up to the route's deadline (at most 10 s, docs/protocol/tunnels.md §2).
INGRESS_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# The live gauges the apps provide: the key a provider returns -> (family, help).
LIVE_GAUGES = {
    "agents_connected": ("gateway_agents_connected", "Agent WebSockets open on this process."),
    "tunnels_connected": ("gateway_tunnels_connected", "Tunnel WebSockets open on this process."),
    "sessions_live": (
        "gateway_sessions_live",
        "Relay sessions in the session store (memory mode: this process's; Redis mode: the whole deployment's).",
    ),
}
PROVIDER_TIMEOUT_SECONDS = 2.0

# When the agent frame being handled arrived (perf_counter), set by the agent socket's receive and read where the
# frame is relayed to the streams: both run in the socket's own task, so nothing has to carry it in between.

# No `_created` series: they would double the output, and no rule of docs/operations.md reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class _WithNode(Collector):
    """Another collector's families with the `node` label added to every sample (the process collectors)."""

    def __init__(self, inner: Any, node: str) -> None:
        self.inner = inner
        self.node = node

    def collect(self) -> Iterable[Metric]:
        for family in self.inner.collect():
            family.samples = [sample._replace(labels={**sample.labels, "node": self.node}) for sample in family.samples]
            yield family


class _LiveCollector(Collector):
    """The live gauges, from the last `refresh_live()`; a gauge whose provider failed is left out of that scrape."""

    def __init__(self, bound: _Bound) -> None:
        self.bound = bound

    def describe(self) -> Iterable[Metric]:
        yield from self._families({}, {})

    def collect(self) -> Iterable[Metric]:
        yield from self._families(self.bound.live, self.bound.streams)

    def _families(self, live: dict[str, float], streams: dict[str, int]) -> Iterable[Metric]:
        node = self.bound.node
        for key, (name, documentation) in LIVE_GAUGES.items():
            family = GaugeMetricFamily(name, documentation, labels=["node"])
            if key in live:
                family.add_metric([node], live[key])
            yield family
        family = GaugeMetricFamily(
            "gateway_sse_streams_open", "Server-Sent Event streams open on this process.", labels=["node", "kind"]
        )
        for kind in STREAM_KINDS if streams else ():  # none before the first refresh
            family.add_metric([node, kind], streams.get(kind, 0))
        yield family


@dataclass
class _Bound:
    """The families of one configuration and their label children, bound once."""

    node: str
    registry: CollectorRegistry
    frames: dict[str, Counter]
    bytes: dict[str, Counter]
    latency: dict[str, Histogram]
    ingress_family: Counter
    ingress_duration: Histogram
    http_family: Counter
    tokens: dict[str, Counter]
    handshakes: dict[str, Counter]
    rate_limited: dict[str, Counter]
    families: tuple[Any, ...]
    ingress_codes: dict[int, Counter] = field(default_factory=dict)
    http_requests: dict[tuple[str, int], Counter] = field(default_factory=dict)
    live: dict[str, float] = field(default_factory=dict)
    streams: dict[str, int] = field(default_factory=dict)


_bound: _Bound | None = None
_node = ""


def configure(*, node_id: str, enabled: bool = True) -> None:
    """Build a fresh registry for `node_id` (all counters at zero), or turn counting off. Called when the project app
    loads (gateway_site.apps); tests call it again to start from zero."""
    global _bound, _node
    _node = node_id
    if not enabled:
        _bound = None
        return
    registry = CollectorRegistry()

    def by(family: Any, label: str, values: Iterable[str]) -> dict[str, Any]:
        return {value: family.labels(node=node_id, **{label: value}) for value in values}

    frames = Counter(
        "gateway_relay_frames",
        "Relayed session frames: client POSTs written to the agent socket, agent frames handed to the event streams.",
        ["node", "direction"],
        registry=registry,
    )
    relay_bytes = Counter(
        "gateway_relay_bytes",
        "Bytes of relayed frames: the POST body (client_to_agent), the event's JSON data (agent_to_client).",
        ["node", "direction"],
        registry=registry,
    )
    latency = Histogram(
        "gateway_relay_latency_seconds",
        "Time in the gateway: POST received -> written to the agent socket; agent frame received -> offered to the "
        "streams.",
        ["node", "direction"],
        buckets=RELAY_LATENCY_BUCKETS,
        registry=registry,
    )
    ingress = Counter(
        "gateway_ingress_requests", "Webhook ingress requests by status code.", ["node", "code"], registry=registry
    )
    ingress_duration = Histogram(
        "gateway_ingress_duration_seconds",
        "Webhook ingress requests, from the request to the end of the answer.",
        ["node"],
        buckets=INGRESS_DURATION_BUCKETS,
        registry=registry,
    )
    http = Counter(
        "gateway_http_requests",
        "HTTP requests by method and status code.",
        ["node", "method", "code"],
        registry=registry,
    )
    tokens = Counter(
        "gateway_oauth_tokens_issued",
        "Access tokens issued by /oauth/token.",
        ["node", "grant_type"],
        registry=registry,
    )
    handshakes = Counter(
        "gateway_handshakes",
        "Session handshake acks from agents, accepted or failed.",
        ["node", "result"],
        registry=registry,
    )
    limited = Counter(
        "gateway_rate_limited", "Requests refused by a rate limit (429).", ["node", "scope"], registry=registry
    )
    bound = _Bound(
        node=node_id,
        registry=registry,
        frames=by(frames, "direction", DIRECTIONS),
        bytes=by(relay_bytes, "direction", DIRECTIONS),
        latency=by(latency, "direction", DIRECTIONS),
        ingress_family=ingress,
        ingress_duration=ingress_duration.labels(node=node_id),
        http_family=http,
        tokens=by(tokens, "grant_type", GRANT_TYPES),
        handshakes=by(handshakes, "result", HANDSHAKE_RESULTS),
        rate_limited=by(limited, "scope", RATE_LIMIT_SCOPES),
        families=(frames, relay_bytes, latency, ingress, ingress_duration, http, tokens, handshakes, limited),
    )
    registry.register(_LiveCollector(bound))
    registry.register(_WithNode(ProcessCollector(registry=None), node_id))
    registry.register(_WithNode(PlatformCollector(registry=None), node_id))
    # GCCollector registers itself wherever it is told: on a scratch registry, since ours holds it wrapped.
    registry.register(_WithNode(GCCollector(registry=CollectorRegistry()), node_id))
    _bound = bound


def enabled() -> bool:
    return _bound is not None


def node() -> str:
    return _node


def registry() -> CollectorRegistry | None:
    """This configuration's registry (None while counting is off)."""
    return _bound.registry if _bound is not None else None


def exposition() -> bytes:
    """The text exposition of every family (call `refresh_live()` first for current gauges)."""
    return generate_latest(_bound.registry) if _bound is not None else b""


# -- counting (the hot path calls these) -------------------------------------------------------------------------


def client_frame_relayed(size: int, started: float) -> None:
    """A client frame (`POST …/messages`, `size` body bytes, received at perf_counter `started`) was written to the
    agent socket."""
    bound = _bound
    if bound is None:
        return
    bound.frames[C2A].inc()
    bound.bytes[C2A].inc(size)
    bound.latency[C2A].observe(time.perf_counter() - started)


def agent_frame_received() -> float:
    """The agent socket received a frame: the start of its relay latency, to hand to `agent_frame_relayed` (0.0 when
    counting is off). The frame may be relayed by another task (relay/frame_lane.py), so it travels with the frame."""
    return time.perf_counter() if _bound is not None else 0.0


def agent_frame_relayed(size: int, started: float) -> None:
    """An agent frame received at `started` became an event (`size`: its JSON data) offered to the session's
    streams."""
    bound = _bound
    if bound is None:
        return
    bound.frames[A2C].inc()
    bound.bytes[A2C].inc(size)
    if started:
        bound.latency[A2C].observe(time.perf_counter() - started)


def http_request(method: str, status: int, seconds: float, *, ingress: bool) -> None:
    """One HTTP request answered with `status` after `seconds`; `ingress` for webhook ingress paths."""
    bound = _bound
    if bound is None:
        return
    if method not in HTTP_METHODS:
        method = OTHER_METHOD  # any text may stand there: never a label value of its own
    key = (method, status)
    child = bound.http_requests.get(key)
    if child is None:
        child = bound.http_requests[key] = bound.http_family.labels(node=bound.node, method=method, code=str(status))
    child.inc()
    if ingress:
        counter = bound.ingress_codes.get(status)
        if counter is None:
            counter = bound.ingress_codes[status] = bound.ingress_family.labels(node=bound.node, code=str(status))
        counter.inc()
        bound.ingress_duration.observe(seconds)


def token_issued(grant_type: str) -> None:
    bound = _bound
    if bound is not None and grant_type in bound.tokens:
        bound.tokens[grant_type].inc()


def handshake(result: str) -> None:
    """An agent's handshake ack was accepted (`ok`) or failed (`failed`)."""
    bound = _bound
    if bound is not None:
        bound.handshakes[result].inc()


def rate_limited(scope: str) -> None:
    """A request was refused by the `scope` limiter (global, ip, route, oauth)."""
    bound = _bound
    if bound is not None:
        bound.rate_limited[scope].inc()


# -- live gauges -------------------------------------------------------------------------------------------------


async def refresh_live() -> None:
    """Read the live gauges: each provider of settings.GATEWAY_METRICS_PROVIDERS (bounded in time; one that fails is
    left out this time) and the event streams open on this process."""
    bound = _bound
    if bound is None:
        return
    from django.conf import settings
    from django.utils.module_loading import import_string

    from gateway_site import outage
    from gateway_site.lifecycle import lifecycle

    live: dict[str, float] = {}
    for dotted in settings.GATEWAY_METRICS_PROVIDERS:
        provider = import_string(dotted)
        try:
            values = provider()
            if asyncio.iscoroutine(values):
                values = await asyncio.wait_for(values, PROVIDER_TIMEOUT_SECONDS)
            live.update(values)
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                logger.warning("metrics provider timed out", extra={"fields": {"provider": dotted}})
            elif outage.unavailable(exc) is None:  # a Redis outage is logged once per outage
                logger.exception("metrics provider failed", extra={"fields": {"provider": dotted}})
    streams = dict.fromkeys(STREAM_KINDS, 0)
    for connection in lifecycle.live_connections():
        kind = getattr(connection, "stream_kind", "")
        if kind in streams:
            streams[kind] += 1
    bound.live = live
    bound.streams = streams


# -- reading back (gateway_site.metrics_history) -----------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """Every sample of the gateway's own families at one moment, plus the live gauges of the last refresh.

    `values` maps (sample name, sorted label pairs without `node`) to the value; histogram buckets are cumulative, as
    exposed."""

    values: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    live: dict[str, float]
    streams: dict[str, int]

    def get(self, name: str, **labels: str) -> float:
        return self.values.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(value for (sample, pairs), value in self.values.items() if sample == name and wanted <= set(pairs))


def snapshot() -> Snapshot:
    bound = _bound
    if bound is None:
        return Snapshot({}, {}, {})
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in bound.families:
        for metric in family.collect():
            for sample in metric.samples:
                pairs = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "node"))
                values[(sample.name, pairs)] = sample.value
    return Snapshot(values, dict(bound.live), dict(bound.streams))
