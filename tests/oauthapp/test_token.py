"""`/oauth/token` and `/oauth/token/revoke` (docs/protocol/oauth.md §4-5 with docs/protocol/decisions.md O1, O4, O6)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from oauth2_provider.models import Grant, RefreshToken

from oauthapp import services
from tests.oauth_helpers import CALLBACK, exchange, get_code, jwt_payload, refresh, sign_in

pytestmark = pytest.mark.django_db
REFRESH_FAILED = {"error": "invalid_grant", "error_description": "refresh token not found or expired"}


@pytest.fixture
def clock(monkeypatch):
    """Freeze the OAuth services' clock at the current second; move it with `clock.advance(seconds)`."""

    class Clock:
        base = int(time.time())
        offset = 0

        def advance(self, seconds: int) -> None:
            self.offset += seconds

    c = Clock()
    monkeypatch.setattr(services, "_now", lambda: c.base + c.offset)
    return c


# authorization_code (§4.2)


def test_code_exchange_issues_the_contract_response(client):
    response = exchange(client, get_code(client, demo_name="Alice"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Cache-Control"] == "no-store" and response["Pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "profile email"
    assert len(body["refresh_token"]) == 54
    claims = jwt_payload(body["access_token"])
    assert (claims["sub"], claims["email"], claims["name"]) == ("demo-3025bc58f9e54175", "alice@example.com", "Alice")


def test_code_and_refresh_token_are_stored_only_as_digests(client):
    code = get_code(client)
    assert not Grant.objects.filter(code=code).exists()
    assert Grant.objects.filter(code=services.digest(code)).exists()
    body = exchange(client, code).json()
    row = RefreshToken.objects.get()
    assert row.token == "" and row.token_checksum == services.digest(body["refresh_token"])


def test_missing_code(client):
    response = exchange(client, None)
    assert (response.status_code, response.json()) == (400, {"error": "code is required"})


def test_unknown_code(client):
    response = exchange(client, "x" * 43)
    assert (response.status_code, response.json()) == (400, {"error": "invalid_grant"})


def test_wrong_client_is_401_and_does_not_burn_the_code(client):
    code = get_code(client)
    response = exchange(client, code, client_id="someone-else")
    assert (response.status_code, response.json()) == (401, {"error": "invalid_client"})
    assert exchange(client, code).status_code == 200


def test_client_id_defaults_to_the_default_client(client):
    assert exchange(client, get_code(client), client_id=None).status_code == 200


@pytest.mark.parametrize("redirect_uri", [None, "http://localhost:61697/callback", CALLBACK + "/"])
def test_redirect_must_match_exactly(client, redirect_uri):
    code = get_code(client)
    response = exchange(client, code, redirect_uri=redirect_uri)
    assert (response.status_code, response.json()) == (400, {"error": "invalid_grant"})
    assert exchange(client, code).status_code == 200


@pytest.mark.parametrize(
    ("verifier", "description"),
    [
        (None, "code_verifier is required"),
        ("a" * 42, "code_verifier must be 43-128 characters (RFC 7636)"),
        ("a" * 129, "code_verifier must be 43-128 characters (RFC 7636)"),
        ("a" * 42 + "!", "code_verifier contains invalid characters (RFC 7636)"),
        ("a" * 43, "pkce mismatch"),
    ],
)
def test_pkce_verifier_checks(client, verifier, description):
    code = get_code(client)
    response = exchange(client, code, verifier=verifier)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": description}
    assert exchange(client, code).status_code == 200  # a failed exchange does not burn the code


def test_code_is_single_use(client):
    code = get_code(client)
    assert exchange(client, code).status_code == 200
    assert exchange(client, code).json() == {"error": "invalid_grant"}


def test_replaying_a_code_revokes_the_refresh_tokens_it_gave(client):
    """decisions.md H6: whoever replays a code may have stolen it; the family issued from it dies."""
    code = get_code(client, scope="profile email offline_access")
    first = exchange(client, code).json()
    other = sign_in(client, "someone@example.com", scope="profile email offline_access")  # an unrelated family
    assert exchange(client, code).json() == {"error": "invalid_grant"}
    assert refresh(client, first["refresh_token"]).json()["error"] == "invalid_grant"
    assert refresh(client, other["refresh_token"]).status_code == 200


def test_code_expires_after_its_ttl_in_whole_seconds(client, clock):
    code = get_code(client)
    clock.advance(300)
    assert exchange(client, code).status_code == 200  # valid during its expiry second
    code = get_code(client)
    clock.advance(301)
    assert exchange(client, code).json() == {"error": "invalid_grant"}


@pytest.mark.django_db(transaction=True)
def test_concurrent_exchanges_of_one_code_have_one_winner(client):
    from django.test import Client

    code = get_code(client)
    results: list[int] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        results.append(exchange(Client(), code).status_code)
        connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [200, 400, 400, 400]


# refresh_token (§4.3)


def test_refresh_rotates_and_keeps_identity_and_scope(client):
    first = sign_in(client, demo_name="Alice", scope="offline_access device")
    response = refresh(client, first["refresh_token"], client_id="commands-agent")
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "offline_access device"
    claims = jwt_payload(second["access_token"])
    assert (claims["sub"], claims["email"], claims["name"]) == ("demo-3025bc58f9e54175", "alice@example.com", "Alice")
    assert refresh(client, second["refresh_token"]).status_code == 200


def test_refresh_requires_the_token(client):
    response = refresh(client, "")
    assert (response.status_code, response.json()) == (400, {"error": "refresh_token is required"})


def test_unknown_refresh_token(client):
    response = refresh(client, "nope")
    assert (response.status_code, response.json()) == (400, REFRESH_FAILED)


def test_reusing_a_rotated_token_revokes_the_whole_family(client):
    first = sign_in(client)
    second = refresh(client, first["refresh_token"]).json()
    other_family = sign_in(client, "bob@example.com")
    assert refresh(client, first["refresh_token"]).json() == REFRESH_FAILED  # reuse
    assert refresh(client, second["refresh_token"]).json() == REFRESH_FAILED  # the legitimate holder is out too
    assert refresh(client, other_family["refresh_token"]).status_code == 200  # other families are untouched


def test_refresh_with_another_client_is_401_and_does_not_consume(client):
    tokens = sign_in(client)
    response = refresh(client, tokens["refresh_token"], client_id="other")
    assert (response.status_code, response.json()) == (401, {"error": "invalid_client"})
    assert refresh(client, tokens["refresh_token"]).status_code == 200


def test_refresh_token_expiry_slides_on_rotation(client, clock, configure):
    configure(refresh_token_ttl_seconds=100)
    tokens = sign_in(client)
    clock.advance(99)
    rotated = refresh(client, tokens["refresh_token"]).json()
    assert "refresh_token" in rotated
    clock.advance(100)
    assert refresh(client, rotated["refresh_token"]).json() == REFRESH_FAILED
    assert not RefreshToken.objects.filter(revoked__isnull=True).exists()  # the expired one was deleted


def test_tombstones_expire_after_the_refresh_ttl(client, clock, configure):
    configure(refresh_token_ttl_seconds=100)
    first = sign_in(client)
    clock.advance(50)
    second = refresh(client, first["refresh_token"]).json()
    clock.advance(60)  # 110 s after sign-in: the first token's tombstone (written at 50 s) is still there
    assert refresh(client, first["refresh_token"]).json() == REFRESH_FAILED
    assert refresh(client, second["refresh_token"]).json() == REFRESH_FAILED


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_with_one_token_revoke_the_family(client):
    from django.test import Client

    tokens = sign_in(client)
    results: list[tuple[int, dict]] = []
    barrier = threading.Barrier(3)

    def attempt() -> None:
        barrier.wait()
        response = refresh(Client(), tokens["refresh_token"])
        results.append((response.status_code, response.json()))
        connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    winners = [body for status, body in results if status == 200]
    assert len(winners) == 1  # the first consume to commit wins
    assert all(body == REFRESH_FAILED for status, body in results if status != 200)
    # The losers presented a consumed token: the winner's new token is revoked with the family.
    assert refresh(client, winners[0]["refresh_token"]).json() == REFRESH_FAILED


# client_credentials (§4.4, O1) and dispatch (§4.1, O6)


def test_client_credentials_in_demo_mode(client):
    response = client.post(
        "/oauth/token", {"grant_type": "client_credentials", "client_id": "bot", "scope": " profile "}
    )
    body = response.json()
    assert response.status_code == 200 and "refresh_token" not in body
    assert body["scope"] == "profile device"
    claims = jwt_payload(body["access_token"])
    assert claims["sub"] == "client:bot" and claims["name"] == "bot" and "email" not in claims


def test_client_credentials_defaults(client):
    body = client.post("/oauth/token", {"grant_type": "client_credentials"}).json()
    assert jwt_payload(body["access_token"])["sub"] == "client:commands-agent" and body["scope"] == "device"


def test_client_credentials_outside_demo(client, configure):
    configure(auth_mode="oidc")
    response = client.post("/oauth/token", {"grant_type": "client_credentials"})
    assert (response.status_code, response.json()) == (400, {"error": "unsupported_grant_type"})


@pytest.mark.parametrize("grant_type", ["", "password", "implicit", "AUTHORIZATION_CODE"])
def test_unsupported_grant_types(client, grant_type):
    response = client.post("/oauth/token", {"grant_type": grant_type})
    assert (response.status_code, response.json()) == (400, {"error": "unsupported grant_type"})


def test_json_bodies_are_not_read(client):
    response = client.post("/oauth/token", {"grant_type": "client_credentials"}, content_type="application/json")
    assert (response.status_code, response.json()) == (400, {"error": "unsupported grant_type"})


def test_token_parameters_are_never_read_from_the_query(client):
    response = client.post("/oauth/token?grant_type=client_credentials", {})
    assert response.json() == {"error": "unsupported grant_type"}


def test_multipart_bodies_are_read(client):
    response = client.post("/oauth/token", {"grant_type": "client_credentials"})  # the test client's default
    assert response.status_code == 200


def test_repeated_parameters_use_the_first_value(client):
    response = client.post(
        "/oauth/token",
        "grant_type=client_credentials&grant_type=password",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200


def test_non_utf8_and_malformed_bodies_are_client_errors(client):
    for body, ctype in [
        (b"grant_type=\xff\xfe", "application/x-www-form-urlencoded"),
        (b"--x\r\nnonsense", "multipart/form-data; boundary=x"),
        (b"\x00\x01\x02", "application/octet-stream"),
    ]:
        response = client.post("/oauth/token", body, content_type=ctype)
        assert response.status_code == 400, (body, response.content)


def test_huge_values_are_refused_cleanly(client):
    response = client.post("/oauth/token", {"grant_type": "authorization_code", "code": "x" * 1_000_000})
    assert (response.status_code, response.json()) == (400, {"error": "invalid_grant"})


def test_token_endpoint_is_post_only(client):
    response = client.get("/oauth/token")
    assert response.status_code == 405 and response["Allow"] == "POST"


# revoke (§5)


def test_revoke_deletes_one_live_token_without_a_tombstone(client):
    tokens = sign_in(client)
    response = client.post("/oauth/token/revoke", {"token": tokens["refresh_token"], "token_type_hint": "x"})
    assert response.status_code == 200 and response.content == b"OK"
    assert response["Content-Type"].startswith("text/plain")
    assert refresh(client, tokens["refresh_token"]).json() == REFRESH_FAILED
    assert not RefreshToken.objects.exists()


@pytest.mark.parametrize("token", ["", "unknown", "eyJhbGciOi.access.token"])
def test_revoke_of_nothing_is_ok(client, token):
    response = client.post("/oauth/token/revoke", {"token": token})
    assert (response.status_code, response.content) == (200, b"OK")


def test_revoke_with_another_client_is_401(client):
    tokens = sign_in(client)
    response = client.post("/oauth/token/revoke", {"token": tokens["refresh_token"], "client_id": "other"})
    assert (response.status_code, response.json()) == (401, {"error": "invalid_client"})
    assert refresh(client, tokens["refresh_token"]).status_code == 200


def test_revoke_leaves_the_rest_of_the_family(client):
    first = sign_in(client)
    second = refresh(client, first["refresh_token"]).json()
    client.post("/oauth/token/revoke", {"token": second["refresh_token"]})
    # The revoked token is gone without a tombstone: presenting it again is a plain failure.
    assert refresh(client, second["refresh_token"]).json() == REFRESH_FAILED


def test_sign_in_sweeps_what_can_never_be_used_again(client, clock, configure):
    configure(refresh_token_ttl_seconds=100)
    stale_code = get_code(client)
    old = sign_in(client)
    refresh(client, old["refresh_token"])  # leaves a tombstone
    clock.advance(301)  # past the code TTL (300) and the refresh TTL (100)
    get_code(client)  # a later sign-in sweeps
    assert not Grant.objects.filter(code=services.digest(stale_code)).exists()
    assert RefreshToken.objects.count() == 0
