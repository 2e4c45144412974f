"""Bearer authentication on /gateway/v1/* (docs/protocol/oauth.md §9 with docs/protocol/decisions.md O2, O3) and
/gateway/v1/health (§4)."""

from __future__ import annotations

import pytest
from channels.testing import ApplicationCommunicator

from gateway_site.auth import WebSocketBearerMiddleware, check_scopes, principal_from_claims
from gateway_site.errors import Forbidden
from oauthapp.tokens import Identity, issue_access_token


def token(scope: str = "profile email", uid: str = "u-1") -> str:
    return issue_access_token(Identity(uid, "u@example.com", "U"), scope)[0]


@pytest.mark.parametrize(
    "header",
    [None, "", "Basic abc", "Bearer", "Bearer    ", "Token abc"],
)
def test_missing_bearer_token(client, header):
    kwargs = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = client.get("/gateway/v1/devices", **kwargs)
    assert (response.status_code, response.json()) == (401, {"error": "missing bearer token"})
    assert "WWW-Authenticate" not in response


@pytest.mark.parametrize("value", ["garbage", "a.b.c", "Bearer x"])
def test_invalid_bearer_token(client, value):
    response = client.get("/gateway/v1/devices", HTTP_AUTHORIZATION=f"Bearer {value}")
    assert (response.status_code, response.json()) == (401, {"error": "invalid access token: invalid jwt token"})


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_scheme_is_case_insensitive_and_whitespace_trimmed(client, scheme):
    response = client.get("/gateway/v1/no-such-route", HTTP_AUTHORIZATION=f"  {scheme}   {token()}  ")
    assert (response.status_code, response.json()) == (404, {"error": "Not Found", "code": 404})


def test_auth_runs_before_routing(client):
    assert client.get("/gateway/v1/no-such-route").status_code == 401


def test_token_in_query_string_is_ignored(client):
    assert client.get(f"/gateway/v1/no-such-route?access_token={token()}").status_code == 401


def test_health_anonymous(client):
    for kwargs in ({}, {"HTTP_AUTHORIZATION": "Bearer expired.or.bad"}):
        response = client.get("/gateway/v1/health", **kwargs)
        assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.django_db
def test_health_authenticated_has_every_counter(client):
    response = client.get("/gateway/v1/health", HTTP_AUTHORIZATION=f"Bearer {token()}")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "state_backend": "memory",
        "devices": 0,
        "grants": 0,
        "sessions": 0,
        "agents": 0,
        "routes": 0,
        "tunnels": 0,
        "inflight": 0,
        "event_backlogs": 0,
    }


@pytest.mark.django_db
def test_health_counts_come_from_registered_providers(client, settings):
    settings.GATEWAY_HEALTH_PROVIDERS = ["tests.system.test_bearer.fake_counts"]
    body = client.get("/gateway/v1/health", HTTP_AUTHORIZATION=f"Bearer {token(uid='owner-7')}").json()
    assert body["devices"] == 7 and body["agents"] == 1 and body["routes"] == 0


def fake_counts(principal):
    return {"devices": int(principal.uid.rsplit("-", 1)[1]), "agents": 1}


def test_principal_scopes_are_deduplicated():
    principal = principal_from_claims({"sub": " u ", "scope": "device profile device", "email": 3})
    assert principal.uid == "u" and principal.scopes == ("device", "profile") and principal.email == ""


def test_missing_device_scope_is_403_with_the_scope_lists():
    principal = principal_from_claims({"sub": "u", "scope": "profile email"})
    with pytest.raises(Forbidden) as caught:
        check_scopes(principal, "device")
    assert caught.value.status == 403
    assert caught.value.body() == {
        "error": "insufficient_scope",
        "required_scopes": ["device"],
        "missing_scopes": ["device"],
    }
    check_scopes(principal_from_claims({"sub": "u", "scope": "device"}), "device")


async def run_ws_middleware(headers):
    seen = {}

    async def inner(scope, receive, send):
        seen.update(scope)

    communicator = ApplicationCommunicator(
        WebSocketBearerMiddleware(inner), {"type": "websocket", "path": "/x", "headers": headers}
    )
    await communicator.send_input({"type": "websocket.connect"})
    await communicator.wait(timeout=5)
    return seen


async def test_websocket_middleware_sets_the_principal():
    seen = await run_ws_middleware([(b"authorization", f"Bearer {token('device')}".encode())])
    assert seen["principal"].uid == "u-1" and seen["principal"].has_scope("device") and seen["auth_error"] is None


async def test_websocket_middleware_records_the_refusal():
    seen = await run_ws_middleware([])
    assert seen["principal"] is None and seen["auth_error"].body() == {"error": "missing bearer token"}


class _Consumer:
    def __init__(self, scope):
        self.scope = scope
        self.sent = []
        self.closed = False

    async def base_send(self, message):
        self.sent.append(message)

    async def close(self):
        self.closed = True


async def test_refusal_uses_the_denial_response_where_supported():
    from gateway_site.auth import refuse_websocket

    consumer = _Consumer({"extensions": {"websocket.http.response": {}}})
    await refuse_websocket(
        consumer, Forbidden("insufficient_scope", required_scopes=["device"], missing_scopes=["device"])
    )
    start, body = consumer.sent
    assert start["type"] == "websocket.http.response.start" and start["status"] == 403
    assert (b"content-type", b"application/json; charset=utf-8") in start["headers"]
    assert body["body"] == b'{"error":"insufficient_scope","required_scopes":["device"],"missing_scopes":["device"]}'
    assert not consumer.closed


async def test_refusal_closes_before_accept_elsewhere():
    from gateway_site.auth import refuse_websocket

    consumer = _Consumer({"extensions": None})
    await refuse_websocket(consumer, Forbidden("nope"))
    assert consumer.closed and consumer.sent == []


@pytest.mark.django_db
def test_bearer_verification_touches_no_database(client, django_assert_num_queries):
    header = f"Bearer {token()}"
    with django_assert_num_queries(0):
        assert client.get("/gateway/v1/no-such-route", HTTP_AUTHORIZATION=header).status_code == 404
