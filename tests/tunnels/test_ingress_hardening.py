"""Ingress hardening (decisions.md H1-H3): sandboxed answers, the order of checks, fair in-flight shares and the
optional webhook host."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from gateway_site.boundedstore import bounded_store
from gateway_site.ratelimit import MAX_BUCKETS
from tests.relay_helpers import bearer, register, token_for
from tests.tunnels.test_tunnel_and_ingress import activate, answering, live_route, new_route
from tunnels import services

pytestmark = pytest.mark.django_db(transaction=True)
SANDBOX = "sandbox; default-src 'none'"


def rate_windows():
    return bounded_store("rate-windows", ttl=120, max_entries=MAX_BUCKETS)


async def test_a_relayed_answer_is_sandboxed_and_keeps_only_harmless_headers(setup):
    http = setup
    _, socket, path = await live_route(http)
    hostile = [
        ["Content-Type", "text/html"],
        ["Service-Worker-Allowed", "/"],
        ["Location", "https://evil.example/"],
        ["Refresh", "0; url=https://evil.example/"],
        ["Link", "</sw.js>; rel=serviceworker"],
        ["Set-Cookie", "session=stolen"],
        ["Clear-Site-Data", '"*"'],
        ["Content-Security-Policy", "default-src *"],
        ["Access-Control-Allow-Origin", "*"],
        ["Strict-Transport-Security", "max-age=1"],
        ["X-Frame-Options", "ALLOWALL"],
        ["X-Content-Type-Options", "none"],
        ["X-XSS-Protection", "1"],
        ["Cache-Control", "no-store"],
        ["ETag", '"v1"'],
        ["Last-Modified", "Wed, 21 Oct 2026 07:28:00 GMT"],
        ["Content-Language", "en"],
        ["Retry-After", "5"],
        ["Vary", "Accept"],
        ["X-Github-Delivery", "abc"],
    ]
    answer = asyncio.ensure_future(answering(socket, status=302, headers=hostile, body=b"<script>x()</script>"))
    response = await http.post(path, content=b"{}")
    await answer
    assert response.status_code == 302
    headers = response.headers
    assert headers["content-security-policy"] == SANDBOX
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    for dropped in (
        "service-worker-allowed",
        "location",
        "refresh",
        "link",
        "set-cookie",
        "clear-site-data",
        "access-control-allow-origin",
        "strict-transport-security",
        "x-xss-protection",
    ):
        assert dropped not in headers, dropped
    assert headers.get_list("content-security-policy") == [SANDBOX]
    assert headers["content-type"] == "text/html" and headers["x-github-delivery"] == "abc"
    assert (headers["cache-control"], headers["etag"], headers["content-language"]) == ("no-store", '"v1"', "en")
    assert headers["retry-after"] == "5" and "Accept" in headers.get_list("vary")
    await socket.close()


async def test_every_ingress_answer_is_sandboxed(setup):
    http = setup
    created = await new_route(http)
    path = created["public_url"].removeprefix("http://localhost:8080")
    for url in (path, "/integrations/not-a-route/token", f"/integrations/rt_{'0' * 32}/token"):
        response = await http.post(url)
        assert response.headers["content-security-policy"] == SANDBOX, url


async def test_a_malformed_route_id_is_404_and_counts_nothing(setup):
    http = setup
    for bad in ("x" * 60_000, "rt_" + "g" * 32, "RT_" + "a" * 32, "rt_" + "a" * 31, ""):
        assert (await http.post(f"/integrations/{bad}/token")).status_code == 404
    assert len(rate_windows()) == 0 and len(bounded_store("route-snapshots", ttl=5, max_entries=1)) == 0


async def test_unknown_routes_spend_only_the_ip_budget(setup, configure):
    http = setup
    await sync_to_async(configure)(ingress_global_limit_per_window=5, ingress_ip_limit_per_window=1000)
    for i in range(20):
        assert (await http.post(f"/integrations/rt_{i:032x}/token")).status_code == 404
    created = await new_route(http)
    path = created["public_url"].removeprefix("http://localhost:8080")
    assert (await http.post(path)).status_code == 503  # the global budget is intact: the route is just not active


async def test_a_wrong_token_spends_only_the_ip_budget(setup, configure):
    http = setup
    created = await new_route(http)
    route_id = created["route"]["route_id"]
    await sync_to_async(configure)(ingress_route_limit_per_window=2)
    for _ in range(5):
        assert (await http.post(f"/integrations/{route_id}/wrong-token")).status_code == 404
    path = created["public_url"].removeprefix("http://localhost:8080")
    assert [(await http.post(path)).status_code for _ in range(3)] == [503, 503, 429]


async def test_a_declared_oversize_body_is_refused_before_anything_is_read(setup):
    http = setup
    created, socket, path = await live_route(http, max_body_bytes=1024)
    read = []

    async def receive():
        read.append(True)
        return {"type": "http.request", "body": b"x" * 4096, "more_body": False}

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-length", b"4096")],
        "client": ("127.0.0.1", 5000),
    }
    from tunnels import ingress

    await ingress.ingress(scope, receive, send, *path.split("/")[2:4])
    assert sent[0]["status"] == 413 and read == []
    # Without a declared length the body is counted as it arrives.
    scope["headers"] = [(b"host", b"testserver")]
    sent.clear()
    await ingress.ingress(scope, receive, send, *path.split("/")[2:4])
    assert sent[0]["status"] == 413 and read == [True]
    await socket.close()


async def test_in_flight_webhooks_have_a_share_per_route_and_per_owner(setup, configure):
    http = setup
    await sync_to_async(configure)(max_inflight_per_route=2, max_inflight_per_owner=3)
    _, socket, path = await live_route(http, deadline_ms=5000)
    second = await new_route(http, deadline_ms=5000)
    await activate(socket, second["route"]["route_id"])
    path_b = second["public_url"].removeprefix("http://localhost:8080")
    waiting = [asyncio.ensure_future(http.post(path, content=b"a")) for _ in range(2)]
    for _ in range(2):
        await socket.recv()  # both reached the (silent) tunnel
    refused = await http.post(path, content=b"a")
    assert (refused.status_code, refused.json()) == (429, {"error": "too many webhooks in flight for this route"})
    assert refused.headers["content-type"].startswith("application/json")
    third = asyncio.ensure_future(http.post(path_b, content=b"b"))
    await socket.recv()
    over_owner = await http.post(path_b, content=b"b")
    assert (over_owner.status_code, over_owner.json()["error"]) == (
        429,
        "too many webhooks in flight for this route's owner",
    )
    # Another owner's webhooks are not affected.
    await sync_to_async(register)("dev_tunnel_other", "owner-2")
    other_token = token_for("owner-2")
    other = await http.post(
        "/gateway/v1/integrations/routes",
        json={"device_id": "dev_tunnel_other", "interface_type": "http"},
        headers=bearer(other_token),
    )
    assert other.status_code == 201
    from tests.relay_helpers import TunnelSocket

    other_socket = TunnelSocket(application, other_token, "dev_tunnel_other")
    await other_socket.open()
    await other_socket.send({"type": "tunnel.activate", "routes": [other.json()["route"]["route_id"]]})
    await other_socket.recv()
    other_path = other.json()["public_url"].removeprefix("http://localhost:8080")
    reply = asyncio.ensure_future(answering(other_socket, status=200, body=b"ok"))
    assert (await http.post(other_path)).status_code == 200
    await reply
    for sock in (socket, other_socket):
        await sock.close()  # the waiting webhooks fail at once: the tunnels went away
    assert [(await w).status_code for w in [*waiting, third]] == [503, 503, 503]


async def test_webhook_urls_and_ingress_move_to_their_own_host(setup, configure):
    http = setup
    await sync_to_async(configure)(ingress_base_url="https://hooks.example.com")
    created = await new_route(http)
    assert created["public_url"].startswith("https://hooks.example.com/integrations/rt_")
    path = created["public_url"].removeprefix("https://hooks.example.com")
    # On the public host, ingress is gone; on the webhook host, everything else is.
    assert (await http.post(path)).status_code == 404
    hooks = {"Host": "hooks.example.com"}
    assert (await http.post(path, headers=hooks)).status_code == 503  # found: the route is just not active
    for other in ("/console", "/oauth/authorize", "/gateway/v1/devices", "/healthz"):
        response = await http.get(other, headers=hooks)
        assert (response.status_code, response.json()) == (404, {"error": "Not Found", "code": 404}), other
    assert (await http.get("/healthz")).status_code == 200
    assert services.public_url("rt_x", "t") == "https://hooks.example.com/integrations/rt_x/t"
