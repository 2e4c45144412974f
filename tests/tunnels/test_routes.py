"""Integration route CRUD and token rotation (docs/protocol/tunnels.md §1-2; tests/vectors/routes.json)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import vector
from tests.relay_helpers import auth, register, token_for
from tunnels import services, tokens
from tunnels.models import IntegrationRoute

pytestmark = pytest.mark.django_db
OWNER = token_for("owner-1", email="owner@example.com")
OTHER = token_for("other-2")
DEVICE = "dev_routes0001"
VECTOR = vector("routes.json")


@pytest.fixture
def device():
    return register(DEVICE, "owner-1")


def create(client, body=None, token=OWNER, **headers):
    payload = {"device_id": DEVICE, "interface_type": "slack_events"} if body is None else body
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return client.post(
        "/gateway/v1/integrations/routes", data, content_type="application/json", **auth(token), **headers
    )


def err(response):
    return response.status_code, response.json()


def test_token_storage_matches_the_vector():
    assert tokens.token_hash(VECTOR["route_token"]) == VECTOR["route_token_sha256_hex"]
    assert services.public_url(VECTOR["route_id"], VECTOR["route_token"]) == VECTOR["public_url"]
    assert len(tokens.new_token()) == 43 and re.fullmatch(r"rt_[a-f0-9]{32}", tokens.new_route_id())


def test_create_returns_the_route_url_and_token_once(client, device):
    response = create(client, {"device_id": DEVICE, "interface_type": "slack_events", "interface_id": " T012345 "})
    assert response.status_code == 201
    body = response.json()
    route = body["route"]
    assert set(route) == {
        "route_id",
        "interface_id",
        "interface_type",
        "token_auth_mode",
        "status",
        "deadline_ms",
        "max_body_bytes",
        "token_max_age_days",
        "token_expires_at",
        "token_last_used_at",
        "created_at",
        "updated_at",
        "verify",
        "inspect",  # docs/protocol/webhooks.md §2
        "buffer",  # §3
    }
    assert route["verify"] is None
    assert route["inspect"] == {"capture_bodies": False}
    assert route["buffer"] == {"enabled": False, "max_requests": 100, "ttl_seconds": 3600}
    assert (route["status"], route["interface_id"], route["token_auth_mode"]) == ("provisioned", "T012345", "path")
    assert (route["deadline_ms"], route["max_body_bytes"], route["token_max_age_days"]) == (2500, 1048576, 90)
    assert route["token_last_used_at"] == ""
    created = datetime.strptime(route["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert route["token_expires_at"] == (created + timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["public_url"] == f"http://localhost:8080/integrations/{route['route_id']}/{body['route_token']}"
    stored = IntegrationRoute.objects.get()
    assert stored.token_hash == tokens.token_hash(body["route_token"]) and body["route_token"] not in stored.token_hash


def test_caller_chosen_token_and_header_device(client, device):
    chosen = VECTOR["route_token"]
    body = {
        "interface_type": "http",
        "route_token": chosen,
        "deadline_ms": 500,
        "max_body_bytes": 5242880,
        "token_max_age_days": 1,
    }
    response = create(client, body, HTTP_X_DEVICE_ID=DEVICE)
    assert response.status_code == 201 and response.json()["route_token"] == chosen


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ("not json", 400, "invalid_request", "Invalid request body"),
        (
            {"device_id": DEVICE, "interface_type": "x", "deadline_ms": "600"},
            400,
            "invalid_request",
            "Invalid request body",
        ),
        (
            {"device_id": DEVICE, "interface_type": "x", "deadline_ms": 600.5},
            400,
            "invalid_request",
            "Invalid request body",
        ),
        ({"interface_type": "x"}, 400, "invalid_request", "device_id is required"),
        ({"device_id": "d!", "interface_type": "x"}, 400, "invalid_request", "Invalid device_id format"),
        (
            {"device_id": DEVICE, "interface_type": "Slack"},
            400,
            "invalid_request",
            "interface_type must match ^[a-z][a-z0-9_]{0,31}$",
        ),
        (
            {"device_id": DEVICE, "interface_type": "x", "token_auth_mode": "header"},
            400,
            "invalid_request",
            "token_auth_mode must be 'path'",
        ),
        (
            {"device_id": DEVICE, "interface_type": "x", "deadline_ms": 499},
            400,
            "invalid_request",
            "deadline_ms must be between 500 and 10000",
        ),
        (
            {"device_id": DEVICE, "interface_type": "x", "max_body_bytes": 5242881},
            400,
            "invalid_request",
            "max_body_bytes must be between 1024 and 5242880",
        ),
        (
            {"device_id": DEVICE, "interface_type": "x", "token_max_age_days": 366},
            400,
            "invalid_request",
            "token_max_age_days must be between 1 and 365",
        ),
        (
            {"device_id": DEVICE, "interface_type": "x", "route_token": "short"},
            422,
            "token_validation_failed",
            "route_token must be at least 43 characters",
        ),
        (
            {"device_id": DEVICE, "interface_type": "x", "route_token": "a" * 129},
            422,
            "token_validation_failed",
            "route_token must be at most 128 characters",
        ),
        (
            {"device_id": DEVICE, "interface_type": "x", "route_token": "a" * 42 + "!"},
            422,
            "token_validation_failed",
            "route_token must contain only [A-Za-z0-9_-]",
        ),
        (
            {"device_id": DEVICE, "interface_type": "x", "route_token": "a" * 64},
            422,
            "token_validation_failed",
            "route_token is too weak",
        ),
        (
            {"device_id": DEVICE, "interface_type": "x", "route_token": "0123456789abcd" * 4},  # 14 distinct
            422,
            "token_validation_failed",
            "route_token is too weak",
        ),
    ],
)
def test_create_errors(client, device, body, status, code, message):
    assert err(create(client, body)) == (status, {"error": {"code": code, "message": message}})


def test_foreign_device_is_forbidden(client, device):
    assert err(create(client, token=OTHER)) == (
        403,
        {"error": {"code": "forbidden", "message": "You do not own this device"}},
    )


def test_demo_mode_registers_an_unknown_device(client):
    assert create(client, {"device_id": "dev_auto0001", "interface_type": "http"}).status_code == 201
    from relay.models import Device

    device = Device.objects.get(device_id="dev_auto0001")
    assert device.owner_uid == "owner-1" and device.display_name == "dev_auto0001" and device.public_key == ""


def test_unknown_device_outside_demo_mode(client, configure):
    configure(auth_mode="oidc")
    response = create(client, {"device_id": "dev_auto0001", "interface_type": "http"})
    assert err(response) == (
        400,
        {
            "error": {
                "code": "invalid_request",
                "message": "Device not found; register the device before creating a route",
            }
        },
    )


def test_one_hundred_routes_per_owner(client, device):
    now = datetime.now(tz=UTC)
    IntegrationRoute.objects.bulk_create(
        [
            IntegrationRoute(
                route_id=f"rt_{i:032x}",
                owner_uid="owner-1",
                device=device,
                interface_type="x",
                token_expires_at=now,
                token_hash="h",
                created_at=now,
                updated_at=now,
            )
            for i in range(100)
        ]
    )
    assert err(create(client)) == (
        429,
        {"error": {"code": "route_limit_exceeded", "message": "Maximum of 100 integration routes per owner reached"}},
    )


def test_missing_token_uses_the_plain_shape(client, device):
    response = client.get("/gateway/v1/integrations/routes")
    assert err(response) == (401, {"error": "missing bearer token"})


# PUT, DELETE, list


def route_id_of(client) -> str:
    return create(client).json()["route"]["route_id"]


def put(client, route_id, body, token=OWNER):
    data = body if isinstance(body, str) else json.dumps(body)
    return client.put(
        f"/gateway/v1/integrations/routes/{route_id}", data, content_type="application/json", **auth(token)
    )


def test_update_fields_and_status(client, device):
    route_id = route_id_of(client)
    response = put(client, route_id, {"deadline_ms": 800, "max_body_bytes": 2048, "status": "inactive"})
    assert response.status_code == 200
    route = response.json()["route"]
    assert (route["deadline_ms"], route["max_body_bytes"], route["status"]) == (800, 2048, "inactive")


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ("{", 400, "invalid_request", "Invalid request body"),
        ({"device_id": "d!"}, 400, "invalid_request", "Invalid device_id format"),
        (
            {"device_id": "dev_nowhere"},
            400,
            "invalid_request",
            "Device not found; register the device before binding it to a route",
        ),
        ({"deadline_ms": 20000}, 400, "invalid_request", "deadline_ms must be between 500 and 10000"),
        ({"token_auth_mode": "query"}, 400, "invalid_request", "token_auth_mode must be 'path'"),
        (
            {"status": "active"},
            400,
            "invalid_route_update",
            "'active' status is set via tunnel activation, not REST API",
        ),
        ({"status": "revoked"}, 400, "invalid_route_update", "status must be 'provisioned' or 'inactive'"),
    ],
)
def test_update_errors(client, device, body, status, code, message):
    route_id = route_id_of(client)
    assert err(put(client, route_id, body)) == (status, {"error": {"code": code, "message": message}})


def test_update_ownership_and_existence(client, device):
    route_id = route_id_of(client)
    assert err(put(client, "rt_bad", {})) == (
        400,
        {"error": {"code": "invalid_request", "message": "route_id is required"}},
    )
    assert err(put(client, "rt_" + "0" * 32, {})) == (
        404,
        {"error": {"code": "route_not_found", "message": "Route not found"}},
    )
    assert err(put(client, route_id, {}, token=OTHER)) == (
        403,
        {"error": {"code": "forbidden", "message": "You do not own this route"}},
    )
    register("dev_other0001", "other-2")
    assert err(put(client, route_id, {"device_id": "dev_other0001"})) == (
        403,
        {"error": {"code": "forbidden", "message": "You do not own this device"}},
    )


def test_concurrent_modification_is_a_version_conflict(client, device, monkeypatch):
    route_id = route_id_of(client)
    original = services._owned_route

    def stale(principal, rid):
        route = original(principal, rid)
        IntegrationRoute.objects.filter(route_id=rid).update(version=route.version + 1)  # someone else saved
        return route

    monkeypatch.setattr(services, "_owned_route", stale)
    response = put(client, route_id, {"deadline_ms": 900})
    assert err(response) == (
        409,
        {"error": {"code": "version_conflict", "message": "Route was modified concurrently; please retry"}},
    )
    assert IntegrationRoute.objects.get(route_id=route_id).deadline_ms == 2500  # no side effects


def test_delete(client, device):
    route_id = route_id_of(client)
    response = client.delete(f"/gateway/v1/integrations/routes/{route_id}", **auth(OWNER))
    body = response.json()
    assert (
        response.status_code == 200
        and body["ok"] is True
        and body["route_id"] == route_id
        and body["revoked_at"].endswith("Z")
    )
    assert client.delete(f"/gateway/v1/integrations/routes/{route_id}", **auth(OWNER)).status_code == 404


def test_list_filters_and_order(client, device):
    first = route_id_of(client)
    IntegrationRoute.objects.filter(route_id=first).update(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    second = create(client, {"device_id": DEVICE, "interface_type": "http"}).json()["route"]["route_id"]
    listed = client.get("/gateway/v1/integrations/routes", **auth(OWNER)).json()["routes"]
    assert [r["route_id"] for r in listed] == [second, first]
    only = client.get("/gateway/v1/integrations/routes?interface_type=http", **auth(OWNER)).json()["routes"]
    assert [r["route_id"] for r in only] == [second]
    assert client.get("/gateway/v1/integrations/routes?status=active", **auth(OWNER)).json() == {"routes": []}
    assert client.get("/gateway/v1/integrations/routes", **auth(OTHER)).json() == {"routes": []}


# rotate-token


def rotate(client, route_id, body=None, token=OWNER):
    data = "" if body is None else (body if isinstance(body, str) else json.dumps(body))
    return client.post(
        f"/gateway/v1/integrations/routes/{route_id}/rotate-token", data, content_type="application/json", **auth(token)
    )


def test_rotation_with_grace(client, device):
    created = create(client).json()
    route_id = created["route"]["route_id"]
    response = rotate(client, route_id, {"grace_seconds": 120})
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"route_id", "public_url", "route_token", "token_expires_at", "previous_token_expires_at"}
    assert body["route_token"] != created["route_token"]
    stored = IntegrationRoute.objects.get()
    assert stored.token_hash == tokens.token_hash(body["route_token"])
    assert stored.previous_token_hash == tokens.token_hash(created["route_token"])


def test_rotation_without_grace_and_with_an_unparsable_body(client, device):
    route_id = route_id_of(client)
    assert "previous_token_expires_at" not in rotate(client, route_id, {"grace_seconds": 0}).json()
    assert IntegrationRoute.objects.get().previous_token_hash == ""
    assert "previous_token_expires_at" in rotate(client, route_id, "not json").json()  # default grace 300


def test_rotation_errors(client, device):
    route_id = route_id_of(client)
    assert err(rotate(client, route_id, {"grace_seconds": 1801})) == (
        400,
        {"error": {"code": "invalid_request", "message": "grace_seconds must be between 0 and 1800"}},
    )
    before = IntegrationRoute.objects.get().token_hash
    for ill_typed in ("0", 0.5, True, "abc", [0]):
        assert err(rotate(client, route_id, {"grace_seconds": ill_typed})) == (
            400,
            {"error": {"code": "invalid_request", "message": "grace_seconds must be an integer between 0 and 1800"}},
        )
    assert IntegrationRoute.objects.get().token_hash == before  # nothing rotated
    assert rotate(client, route_id, token=OTHER).status_code == 403
    assert rotate(client, "rt_" + "1" * 32).status_code == 404
    assert rotate(client, "nope").status_code == 400
