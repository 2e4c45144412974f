"""The route field `verify` through the API and ingress, in process (docs/protocol/webhooks.md §1): the secret is
write-only and sealed at rest; a webhook with a bad signature is refused with 401 before the per-route limit and is
never forwarded."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from console import operator_services
from tests.relay_helpers import bearer
from tests.tunnels.test_tunnel_and_ingress import OWNER, activate, answering, connect, live_route, new_route
from tunnels import services, verify
from tunnels.models import IntegrationRoute

pytestmark = pytest.mark.django_db(transaction=True)
SECRET = "It's a Secret to Everybody"
GITHUB = {"provider": "github", "secret": SECRET}


def github_signature(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def raw_row(route_id: str) -> tuple:
    """The route's row exactly as the database holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tunnels_integrationroute WHERE route_id = %s", [route_id])
        return tuple(cursor.fetchone())


async def put(http, route_id: str, body: dict):
    return await http.put(f"/gateway/v1/integrations/routes/{route_id}", json=body, headers=bearer(OWNER))


async def test_secret_is_write_only_and_sealed_at_rest(setup):
    http = setup
    created = await new_route(http, verify=GITHUB)
    route_id = created["route"]["route_id"]
    assert created["route"]["verify"] == {"provider": "github", "configured": True}
    listed = await http.get("/gateway/v1/integrations/routes", headers=bearer(OWNER))
    assert listed.json()["routes"][0]["verify"] == {"provider": "github", "configured": True}
    updated = await put(http, route_id, {"deadline_ms": 900})
    assert updated.json()["route"]["verify"] == {"provider": "github", "configured": True}  # absent: unchanged
    rotated = await http.post(f"/gateway/v1/integrations/routes/{route_id}/rotate-token", headers=bearer(OWNER))
    operator_listing = await sync_to_async(operator_services.routes)()
    assert operator_listing["routes"][0]["verify"] == "github"
    command_rotation = await sync_to_async(services.routes_rotate)(route_ids=[route_id])
    for shown in (created, listed.json(), updated.json(), rotated.json(), operator_listing, command_rotation):
        assert SECRET not in json.dumps(shown) and "Secret" not in json.dumps(shown)
    row = await sync_to_async(raw_row)(route_id)
    assert not any(isinstance(value, str) and "Secret" in value for value in row)
    stored = await sync_to_async(IntegrationRoute.objects.get)(route_id=route_id)
    assert stored.verify_secret_sealed.startswith("v1:") and stored.verify_secret_sealed in row
    assert verify.unseal(stored.verify_secret_sealed, route_id) == SECRET
    # The snapshot ingress caches (in Redis in the scale-out mode) carries the sealed form only.
    snapshot = await sync_to_async(services.read_snapshot)(route_id)
    assert SECRET not in json.dumps(snapshot) and snapshot["verify"]["sealed"] == stored.verify_secret_sealed


async def test_put_changes_and_turns_off_verification(setup):
    http = setup
    route_id = (await new_route(http))["route"]["route_id"]
    slack = {"provider": "slack", "secret": "slack-signing-secret", "tolerance_seconds": 60}
    assert (await put(http, route_id, {"verify": slack})).json()["route"]["verify"] == {
        "provider": "slack",
        "configured": True,
        "tolerance_seconds": 60,
    }
    custom = {"provider": "hmac_sha256", "secret": "custom-secret", "header": "X-Signature"}
    assert (await put(http, route_id, {"verify": custom})).json()["route"]["verify"] == {
        "provider": "hmac_sha256",
        "configured": True,
        "header": "x-signature",
    }
    assert (await put(http, route_id, {"verify": None})).json()["route"]["verify"] is None
    stored = await sync_to_async(IntegrationRoute.objects.get)(route_id=route_id)
    assert (stored.verify_provider, stored.verify_secret_sealed) == ("", "")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"provider": "gitea", "secret": SECRET}, "verify.provider must be one of github, stripe, slack, hmac_sha256"),
        ({"provider": "github", "secret": "1234567"}, "verify.secret is required and must be 8-512 characters long"),
        ({"provider": "hmac_sha256", "secret": SECRET}, "verify.header is required for the hmac_sha256 provider"),
        ([], "verify must be an object or null"),
    ],
)
async def test_bad_fields_are_400_on_create_and_put(setup, value, message):
    http = setup
    expected = {"error": {"code": "invalid_request", "message": message}}
    response = await http.post(
        "/gateway/v1/integrations/routes",
        json={"device_id": "dev_tunnel0001", "interface_type": "http", "verify": value},
        headers=bearer(OWNER),
    )
    assert (response.status_code, response.json()) == (400, expected)
    assert await sync_to_async(IntegrationRoute.objects.count)() == 0
    route_id = (await new_route(http, verify=GITHUB))["route"]["route_id"]
    response = await put(http, route_id, {"verify": value})
    assert (response.status_code, response.json()) == (400, expected)
    stored = await sync_to_async(IntegrationRoute.objects.get)(route_id=route_id)
    assert stored.verify_provider == "github"  # unchanged


async def test_verified_webhooks_pass_and_forged_ones_are_401_and_not_forwarded(setup):
    http = setup
    _, socket, path = await live_route(http, verify=GITHUB)
    forged = await http.post(path, content=b"Hello, World!", headers=github_signature(b"Hello, World!", "guess-1234"))
    assert (forged.status_code, forged.text) == (401, "invalid signature")
    assert forged.headers["content-type"].startswith("text/plain")
    assert forged.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert (await http.post(path, content=b"no signature")).status_code == 401
    tampered = await http.post(path, content=b"Hello, World?", headers=github_signature(b"Hello, World!"))
    assert tampered.status_code == 401
    answer = asyncio.ensure_future(answering(socket, body=b"thanks"))
    response = await http.post(path, content=b"Hello, World!", headers=github_signature(b"Hello, World!"))
    request = await answer
    assert (response.status_code, response.content) == (200, b"thanks")
    # The first frame the tunnel saw is the genuine webhook: none of the refused ones reached it.
    assert base64.b64decode(request["body_base64"]) == b"Hello, World!"
    await socket.close()


async def test_verification_runs_before_the_route_budget_and_the_tunnel_check(setup, configure):
    http = setup
    created = await new_route(http, verify={"provider": "stripe", "secret": "whsec_abcdefgh"})
    path = created["public_url"].removeprefix("http://localhost:8080")
    await sync_to_async(configure)(ingress_route_limit_per_window=2, ingress_rate_window_seconds=30)
    # Forged webhooks spend no route budget, and are refused as forged even while no tunnel is connected.
    assert [(await http.post(path, content=b"{}")).status_code for _ in range(4)] == [401] * 4
    now = int(time.time())
    signed = hmac.new(b"whsec_abcdefgh", f"{now}.{{}}".encode(), hashlib.sha256).hexdigest()
    headers = {"Stripe-Signature": f"t={now},v1={signed}"}
    assert [(await http.post(path, content=b"{}", headers=headers)).status_code for _ in range(3)] == [503, 503, 429]


async def test_a_verified_route_still_refuses_oversized_bodies(setup):
    http = setup
    created = await new_route(http, verify=GITHUB, max_body_bytes=1024)
    path = created["public_url"].removeprefix("http://localhost:8080")
    body = b"x" * 1025
    response = await http.post(path, content=body, headers=github_signature(body))
    assert (response.status_code, response.text) == (413, "Request Entity Too Large")


async def test_turning_verification_off_takes_effect_at_once(setup):
    http = setup
    created, socket, path = await live_route(http, verify=GITHUB)
    assert (await http.post(path, content=b"unsigned")).status_code == 401
    await put(http, created["route"]["route_id"], {"verify": None})
    answer = asyncio.ensure_future(answering(socket, body=b"ok"))
    assert (await http.post(path, content=b"unsigned")).status_code == 200
    await answer
    await socket.close()


async def test_changing_the_secret_takes_effect_at_once(setup):
    http = setup
    created = await new_route(http, verify=GITHUB)
    route_id = created["route"]["route_id"]
    socket = await connect()
    await activate(socket, route_id)
    path = created["public_url"].removeprefix("http://localhost:8080")
    await put(http, route_id, {"verify": {"provider": "github", "secret": "the-new-secret"}})
    assert (await http.post(path, content=b"x", headers=github_signature(b"x"))).status_code == 401
    answer = asyncio.ensure_future(answering(socket, body=b"ok"))
    assert (await http.post(path, content=b"x", headers=github_signature(b"x", "the-new-secret"))).status_code == 200
    await answer
    await socket.close()
