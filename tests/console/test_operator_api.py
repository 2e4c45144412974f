"""The operator API and its sign-in (docs/operations.md, "Operator console and commands"), in-process: sign-in links
(single use, expiry, audience), the session cookie, CSRF, who counts as an operator, the listings, the actions and
their audit lines."""

from __future__ import annotations

import json
import logging
import time

import pytest
from asgiref.sync import async_to_sync

from console import operator_services
from gateway_site.operator import (
    SESSION_COOKIE,
    mint_login_token,
    mint_operator_token,
    open_session,
)
from oauthapp.models import User
from relay.session_store import sessions
from relay.stores import presence
from shares.models import Grant
from tests.jwks_server import identity_provider
from tests.oauth_helpers import authorize_params, exchange, refresh, sign_in
from tests.relay_helpers import register, token_for
from tunnels import services as tunnel_services
from tunnels import tokens
from tunnels.models import IntegrationRoute

pytestmark = pytest.mark.django_db
API = "/console/operator/api"


class AuditLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def actions(self) -> list[dict]:
        return [r.__dict__["fields"] for r in self.records if r.getMessage() == "operator action"]


@pytest.fixture
def audit():
    handler = AuditLines()
    logger = logging.getLogger("gateway.audit")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def post(client, path, body=None, **headers):
    data = json.dumps(body) if body is not None else ""
    return client.post(API + path, data, content_type="application/json", **headers)


def signed_in(client) -> str:
    """Sign the test client in with a fresh link; returns the session's CSRF token."""
    response = post(client, "/session", {"token": mint_login_token()})
    assert response.status_code == 201, response.content
    return response.json()["csrf_token"]


def csrf(token: str) -> dict[str, str]:
    return {"HTTP_X_OPERATOR_CSRF": token}


def make_route(owner="owner-1", device="dev_operator01") -> str:
    now = tunnel_services._now()
    route_id = tokens.new_route_id()
    IntegrationRoute.objects.create(
        route_id=route_id,
        owner_uid=owner,
        device_id=device,
        interface_type="http",
        status=IntegrationRoute.ACTIVE,
        token_expires_at=now.replace(year=now.year + 1),
        token_hash=tokens.token_hash("t" * 43),
        created_at=now,
        updated_at=now,
    )
    return route_id


# -- signing in ------------------------------------------------------------------------------------------------------


def test_a_link_opens_a_session_with_a_strict_http_only_cookie(client, audit):
    response = post(client, "/session", {"token": mint_login_token()})
    assert response.status_code == 201
    body = response.json()
    assert body["operator"].startswith("op-") and body["via"] == "link" and len(body["csrf_token"]) >= 40
    cookie = response.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/console/operator"
    assert not cookie["secure"]  # plain http here
    assert int(cookie["max-age"]) == 8 * 3600
    assert response["Cache-Control"] == "no-store"
    assert client.get(f"{API}/session").json()["operator"] == body["operator"]
    opened = [r.__dict__["fields"] for r in audit.records if r.getMessage() == "operator session opened"]
    assert opened and opened[0]["operator"] == body["operator"]


def test_the_cookie_is_secure_over_https(client):
    response = client.post(
        f"{API}/session", json.dumps({"token": mint_login_token()}), content_type="application/json", secure=True
    )
    assert response.cookies[SESSION_COOKIE]["secure"]


def test_a_link_works_once(client):
    token = mint_login_token()
    assert post(client, "/session", {"token": token}).status_code == 201
    again = post(client, "/session", {"token": token})
    assert (again.status_code, again.json()) == (401, {"error": "sign-in link already used"})


def test_an_expired_link_is_refused(client):
    token = mint_login_token(now=int(time.time()) - 601)
    response = post(client, "/session", {"token": token})
    assert (response.status_code, response.json()) == (401, {"error": "invalid or expired sign-in link"})


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda: mint_operator_token(), id="command-token"),
        pytest.param(lambda: token_for("owner-1"), id="user-token"),
        pytest.param(lambda: mint_login_token(issuer="https://elsewhere.example"), id="other-issuer"),
        pytest.param(lambda: "not.a.jwt", id="garbage"),
        pytest.param(lambda: "", id="empty"),
    ],
)
def test_only_a_sign_in_token_of_this_server_opens_a_session(client, token):
    response = post(client, "/session", {"token": token()})
    assert response.status_code == 401 and SESSION_COOKIE not in response.cookies


def test_a_link_signed_with_another_key_is_refused(client, configure):
    configure(jwt_signing_key="another-signing-key-that-is-long-enough-1234")
    foreign = mint_login_token()
    configure(jwt_signing_key="test-signing-secret-at-least-32-bytes-long")
    assert post(client, "/session", {"token": foreign}).status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"token": 5}, 400, "token must be a string"),
        ({}, 400, "token is required"),
        ("[1]", 400, "invalid json body"),
    ],
)
def test_session_exchange_bad_inputs(client, body, status, error):
    data = body if isinstance(body, str) else json.dumps(body)
    response = client.post(f"{API}/session", data, content_type="application/json")
    assert (response.status_code, response.json()) == (status, {"error": error})


def test_signing_out_ends_the_session(client):
    token = signed_in(client)
    assert client.delete(f"{API}/session").status_code == 403  # without the CSRF token
    response = client.delete(f"{API}/session", **csrf(token))
    assert response.status_code == 200
    assert client.get(f"{API}/users").status_code == 401
    assert client.get(f"{API}/session").status_code == 401


def test_a_session_whose_record_is_gone_is_over(client):
    cookie, _ = open_session(via="link")
    client.cookies[SESSION_COOKIE] = cookie
    assert client.get(f"{API}/users").status_code == 200
    from gateway_site.boundedstore import clear_all

    clear_all()  # the server-side records are gone (as after their 8 hours)
    assert client.get(f"{API}/users").json() == {"error": "operator session required"}


# -- who may call the API --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/overview", "/users", "/devices", "/routes"])
def test_without_a_session_the_api_answers_401(client, path):
    response = client.get(API + path)
    assert (response.status_code, response.json()) == (401, {"error": "operator session required"})


def test_a_user_token_is_not_an_operator(client):
    response = client.get(f"{API}/users", HTTP_AUTHORIZATION=f"Bearer {token_for('owner-1')}")
    assert (response.status_code, response.json()) == (403, {"error": "not an operator"})
    response = client.get(f"{API}/users", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert (response.status_code, response.json()) == (401, {"error": "invalid operator token"})


def test_an_operator_session_is_not_a_user_token(client):
    cookie, _ = open_session(via="link")
    response = client.get("/gateway/v1/devices", HTTP_AUTHORIZATION=f"Bearer {cookie}")
    assert response.status_code == 401
    response = client.get(f"{API}/users", HTTP_AUTHORIZATION=f"Bearer {cookie}")
    assert response.status_code == 401  # not a command token either


def test_a_command_token_works_once_without_csrf(client, audit):
    register("dev_operator01")
    route_id = make_route()
    header = {"HTTP_AUTHORIZATION": f"Bearer {mint_operator_token()}"}
    assert post(client, f"/routes/{route_id}/disable", **header).status_code == 200
    assert post(client, f"/routes/{route_id}/enable", **header).status_code == 401
    assert audit.actions()[0]["operator"].startswith("cmd-")


def test_changes_need_the_csrf_token(client):
    register("dev_operator01")
    route_id = make_route()
    token = signed_in(client)
    assert post(client, f"/routes/{route_id}/disable").json() == {"error": "csrf token missing or wrong"}
    assert post(client, f"/routes/{route_id}/disable", **csrf("x" * 43)).status_code == 403
    assert not IntegrationRoute.objects.get(route_id=route_id).operator_disabled
    assert post(client, f"/routes/{route_id}/disable", **csrf(token)).status_code == 200
    assert client.get(f"{API}/routes").status_code == 200  # reading needs no CSRF token


def test_no_cross_origin_access(client):
    response = client.get(f"{API}/session", HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in response
    preflight = client.options(
        f"{API}/users/revoke", HTTP_ORIGIN="https://evil.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert "Access-Control-Allow-Origin" not in preflight and "Access-Control-Allow-Headers" not in preflight


def test_wrong_methods_are_405(client):
    signed_in(client)
    assert client.post(f"{API}/users").status_code == 405
    assert client.get(f"{API}/users/revoke").status_code == 405


# -- OPERATOR_EMAILS -------------------------------------------------------------------------------------------------


@pytest.fixture
def oidc_mode(configure):
    from oauthapp import verifiers

    with identity_provider() as provider:
        verifiers._verifiers.clear()
        configure(
            auth_mode="oidc",
            oidc_issuer_url=provider.base_url,
            oidc_client_id="client-1",
            operator_emails=("boss@example.com",),
        )
        yield provider
        verifiers._verifiers.clear()


def oidc_user_token(client, provider, **claims) -> str:
    answer = client.post(
        "/oauth/authorize", authorize_params(id_token=provider.id_token(**claims), response_mode="json")
    )
    assert answer.status_code == 200, answer.content
    return exchange(client, answer.json()["code"]).json()["access_token"]


def test_a_verified_listed_email_opens_a_session(client, oidc_mode, audit):
    token = oidc_user_token(client, oidc_mode, sub="boss-1", email="Boss@Example.com")
    user = User.objects.get(uid="boss-1")
    assert (user.email, user.email_verified) == ("Boss@Example.com", True)
    response = post(client, "/session", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 201 and response.json()["via"] == "email"
    assert client.get(f"{API}/users").status_code == 200
    opened = [r.__dict__["fields"] for r in audit.records if r.getMessage() == "operator session opened"]
    assert opened[0]["uid"] == "boss-1" and "example" not in json.dumps(opened)


def test_a_user_not_listed_is_refused(client, oidc_mode):
    token = oidc_user_token(client, oidc_mode, sub="worker-1", email="worker@example.com")
    response = post(client, "/session", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert (response.status_code, response.json()) == (403, {"error": "not an operator"})


def test_an_unverified_email_is_refused(client, oidc_mode):
    token = oidc_user_token(client, oidc_mode, sub="boss-2", email="boss@example.com", email_verified=False)
    assert User.objects.get(uid="boss-2").email_verified is False
    assert post(client, "/session", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 403


def test_email_sign_in_is_refused_in_demo_mode(client, configure):
    configure(operator_emails=("alice@example.com",))
    token = sign_in(client, "alice@example.com")["access_token"]
    assert User.objects.get(uid=User.objects.get(email="alice@example.com").uid).email_verified is False
    response = post(client, "/session", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403 and "operator_login" in response.json()["error"]


def test_a_bad_user_token_is_401(client, oidc_mode):
    response = post(client, "/session", HTTP_AUTHORIZATION="Bearer nope")
    assert response.status_code == 401


# -- listings --------------------------------------------------------------------------------------------------------


def test_listings_across_users(client):
    tokens_ = sign_in(client, "alice@example.com")
    alice = User.objects.get(email="alice@example.com").uid
    register("dev_alice0001", alice, email="alice@example.com", name="Alice laptop")
    register("dev_bob000001", "bob-uid")
    async_to_sync(presence.mark_online)("dev_alice0001", "agt:1", "node")
    async_to_sync(sessions.create)({"session_id": "sess_1", "device_id": "dev_alice0001", "owner_uid": alice})
    Grant.objects.create(
        grant_id="gr_1", device_id="dev_alice0001", owner_uid=alice, grantee_email="b@example.com",
        grantee_uid="bob-uid", status=Grant.ACTIVE, created_at=1, updated_at=1,
    )  # fmt: skip
    route_id = make_route(alice, "dev_alice0001")
    async_to_sync(tunnel_services.ingress_count)(route_id, 200)
    async_to_sync(tunnel_services.ingress_count)(route_id, 503)
    async_to_sync(tunnel_services.ingress_count)(route_id, 429)
    signed_in(client)

    users = {u["uid"]: u for u in client.get(f"{API}/users").json()["users"]}
    assert users[alice]["email"] == "alice@example.com" and users[alice]["devices"] == 1
    assert users[alice]["agents_online"] == 1 and users[alice]["last_seen_at"]
    assert users["bob-uid"]["devices"] == 1 and users["bob-uid"]["email"] == ""  # a device owner without a sign-in
    assert tokens_["access_token"] not in json.dumps(users)

    devices = {d["device_id"]: d for d in client.get(f"{API}/devices").json()["devices"]}
    assert devices["dev_alice0001"] | {"connected_at": "", "last_seen_at": ""} == {
        "device_id": "dev_alice0001",
        "display_name": "Alice laptop",
        "owner_uid": alice,
        "owner_email": "alice@example.com",
        "online": True,
        "connected_at": "",
        "last_seen_at": "",
        "sessions": 1,
        "grants": 1,
    }
    assert devices["dev_bob000001"]["online"] is False and devices["dev_bob000001"]["sessions"] == 0

    (route,) = client.get(f"{API}/routes").json()["routes"]
    assert route["route_id"] == route_id and route["owner_uid"] == alice and route["tunnel_connected"] is False
    assert route["answers_today"] == {"2xx": 1, "4xx": 0, "5xx": 1, "429": 1}
    assert route["status"] == "active" and route["disabled"] is False

    overview = client.get(f"{API}/overview").json()
    assert overview["state_backend"] == "memory"
    live = overview["live"]
    assert (live["users"], live["devices"], live["routes"], live["sessions"]) == (2, 2, 1, 1)
    assert {"agents", "tunnels", "streams", "inflight"} <= set(live)


def test_the_overview_charts_the_metrics_history_of_this_process(client, monkeypatch):
    from asgiref.sync import async_to_sync

    from gateway_site import metrics, metrics_history

    ticks = iter([100.0, 110.0, 120.0])
    history = metrics_history.History(clock=lambda: next(ticks))
    monkeypatch.setattr(metrics_history, "sampler", history)
    signed_in(client)
    assert client.get(f"{API}/overview").json()["history"] == []
    history._previous = (history.clock(), metrics.snapshot())
    for _ in range(20):
        metrics.client_frame_relayed(100, time.perf_counter() - 0.004)
    metrics.rate_limited("ip")
    async_to_sync(history.sample)()
    metrics.http_request("POST", 502, 0.01, ingress=True)
    async_to_sync(history.sample)()
    first, second = client.get(f"{API}/overview").json()["history"]
    assert set(first) == {
        "t", "agents", "tunnels", "streams", "sessions", "frames_a2c_per_s", "frames_c2a_per_s", "ingress_per_s",
        "ingress_5xx_per_s", "rate_limited_per_s", "relay_p99_ms",
    }  # fmt: skip
    assert first["frames_c2a_per_s"] == 2.0 and first["frames_a2c_per_s"] == 0.0
    assert first["rate_limited_per_s"] == 0.1 and 2.5 <= first["relay_p99_ms"] <= 5.0
    assert (second["ingress_per_s"], second["ingress_5xx_per_s"], second["relay_p99_ms"]) == (0.1, 0.1, None)
    assert isinstance(first["streams"], int) and first["t"] <= second["t"]


def test_answer_classes():
    assert [tunnel_services.answer_class(s) for s in (200, 204, 301, 404, 429, 500, 504)] == [
        "2xx", "2xx", None, "4xx", "429", "5xx", "5xx",
    ]  # fmt: skip


# -- actions ---------------------------------------------------------------------------------------------------------


def test_disable_and_enable_a_route(client, audit):
    register("dev_operator01")
    route_id = make_route()
    token = signed_in(client)
    snapshot = tunnel_services.read_snapshot
    assert tunnel_services.ingress_check(snapshot(route_id), "t" * 43).active
    answer = post(client, f"/routes/{route_id}/disable", **csrf(token))
    assert answer.json() == {"route_id": route_id, "owner_uid": "owner-1", "disabled": True}
    assert not tunnel_services.ingress_check(snapshot(route_id), "t" * 43).active  # ingress answers 503
    assert IntegrationRoute.objects.get(route_id=route_id).status == "active"  # the tunnel keeps its activation
    assert post(client, f"/routes/{route_id}/enable", **csrf(token)).json()["disabled"] is False
    assert tunnel_services.ingress_check(snapshot(route_id), "t" * 43).active
    lines = audit.actions()
    assert [(a["action"], a["target"]) for a in lines] == [("disable_route", route_id), ("enable_route", route_id)]
    assert all(a["operator"].startswith("op-") and a["time"].endswith("Z") for a in lines)


def test_rotate_a_route_token_shows_the_new_url_once(client, audit):
    register("dev_operator01")
    route_id = make_route()
    token = signed_in(client)
    answer = post(client, f"/routes/{route_id}/rotate-token", {"grace_seconds": 0}, **csrf(token)).json()
    new_token = answer["public_url"].rsplit("/", 1)[1]
    assert IntegrationRoute.objects.get(route_id=route_id).token_hash == tokens.token_hash(new_token)
    assert answer["owner_uid"] == "owner-1" and "previous_token_expires_at" not in answer
    assert new_token not in json.dumps([r.__dict__ for r in audit.records], default=str)
    bad = post(client, f"/routes/{route_id}/rotate-token", {"grace_seconds": "0"}, **csrf(token))
    assert (bad.status_code, bad.json()) == (400, {"error": "grace_seconds must be an integer between 0 and 1800"})


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/routes/rt_nope/disable", None, 400, "malformed route id: rt_nope (expected rt_ and 32 hex digits)"),
        (f"/routes/rt_{'0' * 32}/enable", None, 404, f"unknown route: rt_{'0' * 32}"),
        (f"/routes/rt_{'0' * 32}/rotate-token", {}, 404, f"unknown route: rt_{'0' * 32}"),
        ("/devices/dev_unknown1/disconnect", None, 404, "unknown device: dev_unknown1"),
        ("/devices/x/disconnect", None, 400, "malformed device id: x"),
        ("/users/revoke", {}, 400, "uid is required"),
        ("/users/revoke", {"uid": 5}, 400, "uid is required"),
        ("/users/revoke", {"uid": "u" * 256}, 400, "uid must be at most 255 characters"),
        ("/users/revoke", {"uid": "nobody"}, 404, "unknown user: nobody"),
    ],
)
def test_action_bad_inputs(client, audit, path, body, status, error):
    token = signed_in(client)
    response = post(client, path, body, **csrf(token))
    assert (response.status_code, response.json()) == (status, {"error": error})
    assert audit.actions() == []


def test_invalid_json_is_400(client):
    token = signed_in(client)
    response = client.post(f"{API}/users/revoke", "{", content_type="application/json", **csrf(token))
    assert (response.status_code, response.json()) == (400, {"error": "invalid json body"})


def test_disconnect_a_device_without_an_agent(client, audit):
    register("dev_operator01")
    token = signed_in(client)
    answer = post(client, "/devices/dev_operator01/disconnect", **csrf(token)).json()
    assert answer == {"device_id": "dev_operator01", "owner_uid": "owner-1", "disconnected": False}
    assert audit.actions()[0]["action"] == "disconnect_agent"


def test_revoke_everything_of_a_user(client, audit):
    alice_tokens = sign_in(client, "alice@example.com")
    alice = User.objects.get(email="alice@example.com").uid
    register("dev_alice0001", alice)
    register("dev_carol0001", "carol-uid")
    Grant.objects.create(
        grant_id="gr_given", device_id="dev_alice0001", owner_uid=alice, grantee_email="c@example.com",
        grantee_uid="carol-uid", status=Grant.ACTIVE, created_at=1, updated_at=1,
    )  # fmt: skip
    Grant.objects.create(
        grant_id="gr_received", device_id="dev_carol0001", owner_uid="carol-uid", grantee_email="alice@example.com",
        grantee_uid=alice, status=Grant.ACTIVE, created_at=1, updated_at=1,
    )  # fmt: skip
    Grant.objects.create(
        grant_id="gr_other", device_id="dev_carol0001", owner_uid="carol-uid", grantee_email="d@example.com",
        grantee_uid="dave-uid", status=Grant.ACTIVE, created_at=1, updated_at=1,
    )  # fmt: skip
    route_id = make_route(alice, "dev_alice0001")
    other_route = make_route("carol-uid", "dev_carol0001")
    create = async_to_sync(sessions.create)
    create({"session_id": "sess_own", "device_id": "dev_alice0001", "owner_uid": alice})
    create({"session_id": "sess_opened", "device_id": "dev_carol0001", "owner_uid": "carol-uid", "created_by": alice})
    create({"session_id": "sess_other", "device_id": "dev_carol0001", "owner_uid": "carol-uid"})
    token = signed_in(client)

    answer = post(client, "/users/revoke", {"uid": alice}, **csrf(token)).json()
    assert answer == {"uid": alice, "refresh_tokens": 1, "grants": 2, "sessions": 2, "routes": 1, "agents": 0}
    assert refresh(client, alice_tokens["refresh_token"]).status_code == 400
    statuses = dict(Grant.objects.values_list("grant_id", "status"))
    assert statuses == {"gr_given": "revoked", "gr_received": "revoked", "gr_other": "active"}
    assert Grant.objects.get(grant_id="gr_given").revoked_by_uid == "operator"
    assert IntegrationRoute.objects.get(route_id=route_id).operator_disabled
    assert not IntegrationRoute.objects.get(route_id=other_route).operator_disabled
    left = {s["session_id"] for s in async_to_sync(sessions.all)()}
    assert left == {"sess_other"}
    (line,) = audit.actions()
    assert line["action"] == "revoke_user" and line["target"] == alice and line["grants"] == 2
    # Access tokens already issued stay valid until they expire (stateless, docs/operations.md).
    headers = {"HTTP_AUTHORIZATION": f"Bearer {alice_tokens['access_token']}"}
    assert client.get("/gateway/v1/devices", **headers).status_code == 200


def test_last_seen_follows_token_issuance(client):
    tokens_ = sign_in(client, "alice@example.com")
    user = User.objects.get(email="alice@example.com")
    first = user.last_seen_at
    assert first is not None
    User.objects.filter(pk=user.pk).update(last_seen_at=first.replace(year=2020))
    assert refresh(client, tokens_["refresh_token"]).status_code == 200
    seen = User.objects.get(pk=user.pk).last_seen_at
    assert seen is not None and seen.year > 2020
    client.post("/oauth/token", {"grant_type": "client_credentials", "client_id": "robot"})
    assert User.objects.get(uid="client:robot").last_seen_at is not None


def test_the_services_refuse_demo_users_by_email(configure):
    configure(operator_emails=("x@example.com",))
    from gateway_site.auth import Principal
    from gateway_site.errors import Forbidden

    with pytest.raises(Forbidden):
        operator_services.session_open_with_user(Principal("u", "x@example.com", "x", ()))
