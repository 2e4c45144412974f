"""Invites: create and accept (docs/protocol/devices-and-shares.md §9.1-9.2, §14, docs/protocol/decisions.md D2)."""

from __future__ import annotations

import re
import threading

import pytest
from django.db import connection
from django.test import Client

from shares.models import Grant, InviteToken
from tests.relay_helpers import register, token_for
from tests.shares_helpers import BOB, DEVICE, EVE, OWNER, accept, invite, invite_token, post_json

pytestmark = pytest.mark.django_db


@pytest.fixture
def device():
    return register(DEVICE, "owner-1", email="owner@example.com", name="office-mac")


def error(response):
    return response.status_code, response.json()


# Create (§9.1)


def test_create_answers_201_with_a_pending_grant_and_the_link(client, device, clock):
    later = clock.now + 30 * 86400
    response = invite(client, email=" Bob@Example.com ", grantExpiresAt=later)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"grantId", "status", "inviteUrl", "inviteTokenExpiresAt", "grantExpiresAt"}
    assert re.fullmatch(r"gr_[0-9a-f]{32}", body["grantId"])
    assert body["status"] == "pending"
    assert re.fullmatch(r"http://localhost:8080/share/[A-Za-z0-9_-]{43}", body["inviteUrl"])
    assert body["inviteTokenExpiresAt"] == clock.now + 7 * 86400
    assert body["grantExpiresAt"] == later
    grant = Grant.objects.get()
    assert grant.grantee_email == "bob@example.com" and grant.owner_uid == "owner-1"


def test_an_invite_whose_grant_has_already_expired_is_refused(client, device, clock):
    for past in (clock.now, clock.now - 1, 1):
        assert error(invite(client, grantExpiresAt=past)) == (400, {"error": "grantExpiresAt must be in the future"})
    assert Grant.objects.count() == 0
    assert invite(client, grantExpiresAt=clock.now + 1).status_code == 201


def test_only_the_token_digest_is_stored(client, device):
    token = invite_token(invite(client))
    stored = InviteToken.objects.get()
    assert stored.token_hash != token and len(stored.token_hash) == 43


def test_invite_links_are_on_the_gateway_whatever_frontend_url_says(client, device, configure):
    configure(frontend_url="https://app.example.org/")
    # docs/protocol/decisions.md D2
    assert invite(client).json()["inviteUrl"].startswith("http://localhost:8080/share/")


def test_custom_invite_ttl(client, device, clock):
    body = invite(client, inviteTokenTtlSeconds=3600).json()
    assert body["inviteTokenExpiresAt"] == clock.now + 3600 and body["grantExpiresAt"] == 0
    assert (
        invite(client, "c@example.com", inviteTokenTtlSeconds=-5).json()["inviteTokenExpiresAt"] == clock.now + 604800
    )


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"deviceId": "dev_shared1", "email": "bob@example.com"', "application/json"),
        ('{"deviceId": "dev_shared1", "email": "bob@example.com"}', "text/plain"),
        ('{"deviceId": "dev_shared1", "email": "b@example.com", "grantExpiresAt": "1778572800"}', "application/json"),
        ('{"deviceId": "dev_shared1", "email": "b@example.com", "grantExpiresAt": 1.5}', "application/json"),
        ('{"deviceId": "dev_shared1", "email": "b@example.com", "inviteTokenTtlSeconds": true}', "application/json"),
        ('{"deviceId": 5, "email": "bob@example.com"}', "application/json"),
        ('{"deviceId": "dev_shared1", "email": ["bob@example.com"]}', "application/json"),
        ("[]", "application/json"),
    ],
)
def test_body_errors(client, device, body, content_type):
    response = post_json(client, "/gateway/v1/shares/invites", body, OWNER, content_type)
    assert error(response) == (400, {"error": "invalid json body"})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"email": "bob@example.com"}, "deviceId is required"),
        ({"deviceId": "x!", "email": "bob@example.com"}, "invalid deviceId"),
        ({"deviceId": DEVICE, "email": "bob"}, "invalid email"),
        ({"deviceId": DEVICE, "email": "a@b@c"}, "invalid email"),
        ({"deviceId": DEVICE, "email": "@example.com"}, "invalid email"),
        ({"deviceId": DEVICE, "email": " OWNER@example.com"}, "cannot invite yourself"),
        (
            {"deviceId": DEVICE, "email": "bob@example.com", "inviteTokenTtlSeconds": 7776001},
            "inviteTokenTtlSeconds exceeds maximum",
        ),
    ],
)
def test_validation_errors_in_order(client, device, body, message):
    assert error(post_json(client, "/gateway/v1/shares/invites", body, OWNER)) == (400, {"error": message})


def test_unknown_device_and_other_owner(client, device):
    assert error(invite(client, device_id="dev_none")) == (404, {"error": "device not found"})
    assert error(invite(client, "x@example.com", token=BOB)) == (403, {"error": "you do not own this device"})


def test_no_email_fallback_for_invites(client, device):
    same_email = token_for("another-uid", email="owner@example.com")
    assert error(invite(client, token=same_email)) == (403, {"error": "you do not own this device"})


def test_duplicate_pending_or_active_grant_conflicts(client, device, clock):
    invite(client)
    conflict = (409, {"error": "an active or pending grant already exists for this email and device"})
    assert error(invite(client, "BOB@example.com")) == conflict
    clock.advance(7 * 86400 + 1)  # the pending one expires
    assert invite(client).status_code == 201


# Accept (§9.2)


def test_accept_activates_the_grant(client, device, clock):
    created = invite(client).json()
    response = accept(client, invite_token_from(created))
    assert response.status_code == 200
    assert response.json() == {
        "grantId": created["grantId"],
        "deviceId": DEVICE,
        "role": "collaborator",
        "status": "active",
    }
    grant = Grant.objects.get()
    assert (grant.grantee_uid, grant.accepted_at, grant.status) == ("bob-2", clock.now, "active")
    assert not InviteToken.objects.exists()


def invite_token_from(body) -> str:
    return body["inviteUrl"].rsplit("/", 1)[1]


def test_accept_records_the_acceptors_own_device(client, device):
    register("dev_bobs1", "bob-2")
    token = invite_token(invite(client))
    assert accept(client, token, deviceId="dev_bobs1").status_code == 200
    assert Grant.objects.get().grantee_device_id == "dev_bobs1"


def test_email_is_required_before_anything_else(client, device):
    no_email = token_for("client:bot")
    response = post_json(client, "/gateway/v1/shares/invites/accept", "not json", no_email)
    assert error(response) == (403, {"error": "email is required to accept invites"})


def test_accept_body_and_token_errors(client, device):
    assert error(post_json(client, "/gateway/v1/shares/invites/accept", "{", BOB)) == (
        400,
        {"error": "invalid json body"},
    )
    assert error(accept(client, "  ")) == (400, {"error": "token is required"})
    assert error(accept(client, "unknown-token")) == (404, {"error": "invite not found or already used"})


def test_accept_with_a_device_that_is_not_the_callers(client, device):
    token = invite_token(invite(client))
    assert error(accept(client, token, deviceId="bad id")) == (400, {"error": "invalid deviceId"})
    assert error(accept(client, token, deviceId="dev_nowhere")) == (400, {"error": "invalid deviceId"})
    assert error(accept(client, token, deviceId=DEVICE)) == (403, {"error": "you do not own this device"})
    assert accept(client, token).status_code == 200


def test_second_accept_is_404(client, device):
    token = invite_token(invite(client))
    assert accept(client, token).status_code == 200
    assert error(accept(client, token)) == (404, {"error": "invite not found or already used"})


def test_wrong_email_does_not_consume_the_token(client, device):
    token = invite_token(invite(client))
    assert error(accept(client, token, token=EVE)) == (403, {"error": "email does not match this invite"})
    assert accept(client, token).status_code == 200


def test_revoked_pending_invite_is_409(client, device):
    created = invite(client).json()
    client.post(f"/gateway/v1/shares/grants/{created['grantId']}/revoke", HTTP_AUTHORIZATION=f"Bearer {OWNER}")
    assert error(accept(client, invite_token_from(created))) == (409, {"error": "invite is revoked"})


def test_expired_invite_is_410_then_gone(client, device, clock):
    token = invite_token(invite(client, inviteTokenTtlSeconds=60))
    clock.advance(60)
    clock.advance(1)
    assert error(accept(client, token)) == (410, {"error": "invite has expired"})
    assert Grant.objects.get().status == "expired"
    assert error(accept(client, token)) == (404, {"error": "invite not found or already used"})


def test_invite_is_valid_during_its_expiry_second(client, device, clock):
    token = invite_token(invite(client, inviteTokenTtlSeconds=60))
    clock.advance(60)
    assert accept(client, token).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_accepts_have_exactly_one_winner():
    register(DEVICE, "owner-1", email="owner@example.com")
    token = invite_token(invite(Client()))
    barrier = threading.Barrier(6)
    results: list[tuple[int, dict]] = []

    def attempt() -> None:
        barrier.wait()
        response = accept(Client(), token)
        results.append((response.status_code, response.json()))
        connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(status for status, _ in results) == [200, 404, 404, 404, 404, 404]
    assert all(body == {"error": "invite not found or already used"} for status, body in results if status == 404)
    assert Grant.objects.get().status == "active"


@pytest.mark.django_db(transaction=True)
def test_concurrent_invites_never_exceed_the_pending_cap(configure):
    """decisions.md H3: 20 invites for one device at once, with room for 5."""
    register(DEVICE, "owner-1", email="owner@example.com")
    configure(max_pending_invites_per_device=5)
    barrier = threading.Barrier(20)
    statuses: list[int] = []

    def attempt(i: int) -> None:
        barrier.wait()
        statuses.append(invite(Client(), f"guest{i}@example.com").status_code)
        connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(statuses) == [201] * 5 + [429] * 15
    assert Grant.objects.filter(status="pending").count() == 5


# The invite link page (D2)


def test_invite_link_page_shows_what_is_shared(client, device):
    token = invite_token(invite(client))
    response = client.get(f"/share/{token}")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "owner@example.com" in html and "office-mac" in html
    assert f"/console#/share/{token}" in html
    assert response["Referrer-Policy"] == "no-referrer"


def test_unknown_invite_link_page(client):
    response = client.get("/share/nope-nope-nope")
    assert response.status_code == 404 and "not valid" in response.content.decode()


def test_invite_preview_as_json(client, device):
    token = invite_token(invite(client))
    response = client.get(f"/share/{token}", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    body = response.json()
    assert (body["deviceName"], body["ownerEmail"], body["status"]) == ("office-mac", "owner@example.com", "pending")
    missing = client.get("/share/unknown-token-x", HTTP_ACCEPT="application/json")
    assert (missing.status_code, missing.json()) == (404, {"error": "invite not found or already used"})
