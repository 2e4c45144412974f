"""The common JSON error shapes (docs/protocol/system-and-console.md §1): 404, 405, 413, 500 and raised API errors."""

from __future__ import annotations

import httpx
import pytest

from gateway_site.asgi import application
from gateway_site.bodylimit import BodyLimitMiddleware
from oauthapp.tokens import Identity, issue_access_token

MAX = 4 * 1024 * 1024


@pytest.mark.parametrize(
    "path", ["/gateway/v1/nope", "/oauth/nope", "/integrations", "/nope", "/gateway/v1/devices/", "/healthz/"]
)
def test_unknown_paths_get_the_framework_404_without_redirect(client, path):
    token = issue_access_token(Identity("u-1"), "profile")[0]
    response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {"error": "Not Found", "code": 404}


def test_wrong_method_gets_405_with_allow(client):
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json() == {"error": "Method Not Allowed", "code": 405}


@pytest.mark.urls("tests.system.urls_crash")
def test_uncaught_exception_is_a_json_500_without_its_text(client, caplog):
    response = client.get("/test-crash")
    assert response.status_code == 500
    assert response.json() == {"error": "Internal Server Error", "code": 500}
    assert "secret internal detail" not in response.content.decode()
    assert any(record.name == "gateway.errors" for record in caplog.records)


@pytest.mark.urls("tests.system.urls_crash")
def test_raised_api_errors_render_with_extra_fields(client):
    response = client.get("/test-conflict")
    assert response.status_code == 409
    assert response.json() == {"error": "handshake already acknowledged", "handshake_id": "hs_1"}


@pytest.mark.urls("tests.system.urls_crash")
def test_django_body_limit_renders_413(client):
    response = client.post("/test-too-big", data=b"{}", content_type="application/json")
    assert response.status_code == 413
    assert response.json() == {"error": "Request Entity Too Large", "code": 413}


async def test_declared_oversize_body_gets_413_before_the_app():
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        response = await http.post("/healthz", content=b"x" * (MAX + 1))
    assert response.status_code == 413
    assert response.json() == {"error": "Request Entity Too Large", "code": 413}


async def test_body_at_the_limit_reaches_the_app():
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        response = await http.post("/healthz", content=b"x" * MAX)
    assert response.status_code == 405


async def _call(app, messages, headers=()):
    sent = []
    queue = list(messages)

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": list(headers)}
    await app(scope, receive, send)
    return sent


async def test_chunked_body_over_the_limit_is_cut_off_as_it_is_read():
    seen = []

    async def inner(scope, receive, send):
        for _ in range(3):
            seen.append((await receive())["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})  # too late: swallowed

    chunk = {"type": "http.request", "body": b"x" * 600, "more_body": True}
    sent = await _call(BodyLimitMiddleware(inner, 1000), [chunk, chunk, chunk])
    assert seen == ["http.request", "http.disconnect", "http.disconnect"]  # the app learns the request is gone
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 413
    assert sent[1]["body"] == b'{"error":"Request Entity Too Large","code":413}'


async def test_a_body_within_the_limit_passes_as_it_arrives_and_an_unread_body_is_never_pulled():
    seen = []

    async def inner(scope, receive, send):
        seen.append(await receive())
        seen.append(await receive())
        seen.append(await receive())

    chunks = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    ]
    await _call(BodyLimitMiddleware(inner, 1000), chunks)
    assert seen == [*chunks, {"type": "http.disconnect"}]
    reads = []

    async def receive():
        reads.append(True)
        return {"type": "http.request", "body": b"x" * 999}

    async def answers_without_reading(scope, receive, send):
        await send({"type": "http.response.start", "status": 404, "headers": []})

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    await BodyLimitMiddleware(answers_without_reading, 1000)(scope, receive, send)
    assert reads == [] and sent[0]["status"] == 404
