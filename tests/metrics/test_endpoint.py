"""`GET /metrics` (docs/operations.md): who may read it, what it answers, and what its labels may carry. Driven through
the whole ASGI application with scopes whose TCP peer the test chooses."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json

import pytest

from gateway_site import health, metrics
from gateway_site.asgi import application
from gateway_site.config import ConfigError, load_config
from tests.helpers import TEST_KEY
from tests.metrics.conftest import NODE
from tests.metrics_helpers import REQUIRED_SAMPLES, missing_samples, parse

TOKEN = "metrics-token-0123456789abcdef"


async def get(path: str = "/metrics", *, peer: tuple[str, int] | None = ("127.0.0.1", 50000), headers=()):
    """One GET through the full ASGI application; returns (status, headers, body)."""
    sent: list[dict] = []
    delivered = False
    never = asyncio.Event()

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": peer,
        "server": ("testserver", 80),
    }
    await application(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, body


@pytest.fixture
def with_token(settings):
    settings.GATEWAY = dataclasses.replace(settings.GATEWAY, metrics_token=TOKEN)


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"])
async def test_without_a_token_loopback_peers_read_the_metrics(peer):
    status, headers, body = await get(peer=(peer, 50000))
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert parse(body.decode()).value("gateway_agents_connected", node=NODE) is not None


@pytest.mark.parametrize("peer", [("203.0.113.9", 50000), ("10.0.0.1", 1), ("::ffff:198.51.100.1", 2), None])
async def test_without_a_token_other_peers_are_refused_with_403(peer):
    status, headers, body = await get(peer=peer)
    assert status == 403
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(body) == {"error": health.LOOPBACK_ONLY}


async def test_a_forwarded_for_header_never_makes_a_peer_loopback(settings):
    settings.GATEWAY = dataclasses.replace(settings.GATEWAY, proxy_header="X-Forwarded-For")
    status, _, _ = await get(peer=("203.0.113.9", 50000), headers=[(b"x-forwarded-for", b"127.0.0.1")])
    assert status == 403


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (None, "missing bearer token"),
        ("Bearer ", "missing bearer token"),
        ("Basic " + TOKEN, "missing bearer token"),
        ("Bearer wrong-token-0123456789abcdef", "invalid metrics token"),
        ("Bearer " + TOKEN[:-1], "invalid metrics token"),
        ("Bearer " + TOKEN + "x", "invalid metrics token"),
    ],
)
async def test_with_a_token_only_the_right_bearer_reads_the_metrics(with_token, authorization, error):
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    for peer in (("127.0.0.1", 50000), ("203.0.113.9", 50000)):  # loopback is no exception once a token is set
        status, response_headers, body = await get(peer=peer, headers=headers)
        assert (status, json.loads(body)) == (401, {"error": error})
        assert response_headers["www-authenticate"] == "Bearer"


async def test_with_a_token_the_right_bearer_reads_the_metrics_from_anywhere(with_token):
    for peer in (("127.0.0.1", 50000), ("203.0.113.9", 50000)):
        status, _, body = await get(peer=peer, headers=[(b"authorization", f"bearer {TOKEN}".encode())])
        assert status == 200 and b"gateway_relay_frames_total" in body


async def test_the_token_is_compared_in_constant_time(with_token, monkeypatch):
    compared = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module health.py calls it through
    assert (await get(headers=[(b"authorization", b"Bearer guess-0123456789abcdef")]))[0] == 401
    assert (await get(headers=[(b"authorization", f"Bearer {TOKEN}".encode())]))[0] == 200
    assert compared == [(b"guess-0123456789abcdef", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


async def test_with_counting_off_the_endpoint_is_a_404():
    metrics.configure(node_id=NODE, enabled=False)
    status, _, body = await get()
    assert (status, json.loads(body)) == (404, {"error": "Not Found", "code": 404})
    metrics.client_frame_relayed(10, 0.0)  # and counting does nothing
    assert metrics.exposition() == b"" and metrics.registry() is None


async def test_other_methods_are_a_405():
    from django.test import AsyncClient

    response = await AsyncClient().post("/metrics")
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"


async def test_every_family_of_the_issue_is_exposed_with_its_labels_and_the_node_label_everywhere():
    metrics.http_request("POST", 202, 0.01, ingress=False)
    metrics.http_request("POST", 201, 0.02, ingress=True)
    status, _, body = await get()
    assert status == 200
    exposition = parse(body.decode())
    assert missing_samples(exposition) == {}
    assert exposition.nodes() == {NODE}  # every sample, the process collectors' included
    assert exposition.types["gateway_relay_latency_seconds"] == "histogram"
    assert exposition.types["gateway_ingress_duration_seconds"] == "histogram"
    assert exposition.types["gateway_sse_streams_open"] == "gauge"
    assert {labels["kind"] for n, labels, _ in exposition.samples if n == "gateway_sse_streams_open"} == {
        "session",
        "devices",
    }
    assert len(REQUIRED_SAMPLES) == 20
    assert "_created" not in exposition.text


async def test_counting_moves_the_exposed_values():
    metrics.client_frame_relayed(120, 0.0)
    received = metrics.agent_frame_received()
    metrics.agent_frame_relayed(300, received)
    metrics.agent_frame_relayed(200, received)
    metrics.token_issued("authorization_code")
    metrics.token_issued("refresh_token")
    metrics.token_issued("password")  # not a grant the gateway issues: never a label value
    metrics.handshake("ok")
    metrics.handshake("failed")
    metrics.handshake("failed")
    for scope in ("global", "ip", "route", "oauth", "oauth"):
        metrics.rate_limited(scope)
    metrics.http_request("BREW", 405, 0.001, ingress=False)  # any method text maps onto `other`
    metrics.http_request("GET", 404, 0.001, ingress=True)
    metrics.http_request("GET", 503, 0.5, ingress=True)
    exposition = parse(metrics.exposition().decode())
    assert exposition.get("gateway_relay_frames_total", direction="client_to_agent") == 1
    assert exposition.get("gateway_relay_bytes_total", direction="client_to_agent") == 120
    assert exposition.get("gateway_relay_frames_total", direction="agent_to_client") == 2
    assert exposition.get("gateway_relay_bytes_total", direction="agent_to_client") == 500
    assert exposition.get("gateway_relay_latency_seconds_count", direction="agent_to_client") == 2
    assert exposition.get("gateway_relay_latency_seconds_count", direction="client_to_agent") == 1
    assert exposition.get("gateway_oauth_tokens_issued_total", grant_type="authorization_code") == 1
    assert exposition.get("gateway_oauth_tokens_issued_total", grant_type="refresh_token") == 1
    assert "password" not in exposition.text
    assert exposition.get("gateway_handshakes_total", result="ok") == 1
    assert exposition.get("gateway_handshakes_total", result="failed") == 2
    assert [exposition.get("gateway_rate_limited_total", scope=s) for s in ("global", "ip", "route", "oauth")] == [
        1,
        1,
        1,
        2,
    ]
    assert exposition.get("gateway_http_requests_total", method="other", code="405") == 1
    assert "BREW" not in exposition.text
    assert exposition.get("gateway_ingress_requests_total", code="404") == 1
    assert exposition.get("gateway_ingress_requests_total", code="503") == 1
    assert exposition.get("gateway_ingress_duration_seconds_count") == 2
    assert exposition.get("gateway_ingress_duration_seconds_bucket", le="0.005") == 1
    assert exposition.get("gateway_http_requests_total", method="GET", code="503") == 1


async def test_a_failing_gauge_provider_leaves_out_only_its_gauge(settings):
    settings.GATEWAY_METRICS_PROVIDERS = [*settings.GATEWAY_METRICS_PROVIDERS, "tests.metrics.test_endpoint.broken"]
    await metrics.refresh_live()
    exposition = parse(metrics.exposition().decode())
    assert exposition.value("gateway_agents_connected") == 0
    assert exposition.value("gateway_sessions_live") == 0


def broken() -> dict[str, float]:
    raise RuntimeError("provider down")


def test_metrics_token_is_validated():
    base = {"JWT_SIGNING_KEY": TEST_KEY}
    assert load_config(base).metrics_token == ""
    assert load_config(base).metrics_enabled is True
    assert load_config({**base, "METRICS_TOKEN": "  " + TOKEN + " "}).metrics_token == TOKEN
    assert TOKEN not in repr(load_config({**base, "METRICS_TOKEN": TOKEN}))
    for bad in ("short-token", "has a space in the middle", "tøken-with-non-ascii-chars"):
        with pytest.raises(ConfigError) as failure:
            load_config({**base, "METRICS_TOKEN": bad})
        assert str(failure.value) == "METRICS_TOKEN must be at least 16 characters of visible ASCII, without spaces"
    assert load_config({**base, "METRICS_ENABLED": "false"}).metrics_enabled is False
    assert load_config({**base, "METRICS_ENABLED": "maybe"}).metrics_enabled is True  # the contract's bool parsing


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("localhost", False),
        ("", False),
        ("2001:db8::1", False),
    ],
)
def test_loopback_addresses(address, loopback):
    assert health.is_loopback(address) is loopback
