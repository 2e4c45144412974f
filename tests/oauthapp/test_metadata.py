"""Discovery, client registration and the OAuth rate limiter (docs/protocol/oauth.md §6, §7, §11)."""

from __future__ import annotations

import pytest

from tests.oauth_helpers import authorize_params

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/oauth/.well-known/openid-configuration",
    ],
)
def test_discovery_document(client, path):
    response = client.get(path)
    assert response.status_code == 200
    body = response.json()
    assert body["issuer"] == "http://localhost:8080"
    assert body["authorization_endpoint"] == "http://localhost:8080/oauth/authorize"
    assert body["token_endpoint"] == "http://localhost:8080/oauth/token"
    assert body["jwks_uri"] == "http://localhost:8080/.well-known/jwks.json"
    assert body["response_types_supported"] == ["code"]
    assert body["grant_types_supported"] == ["authorization_code", "refresh_token", "client_credentials"]
    assert body["token_endpoint_auth_methods_supported"] == ["none"]
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert body["scopes_supported"] == ["profile", "email", "device", "offline_access"]


def test_discovery_lists_client_credentials_only_in_demo_mode(client, configure):
    configure(auth_mode="firebase", firebase_project_id="p", public_base_url="https://gw.example.com")
    body = client.get("/.well-known/openid-configuration").json()
    assert body["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert body["issuer"] == "https://gw.example.com"


def test_oauth_alias_of_the_server_metadata_does_not_exist(client):
    assert client.get("/oauth/.well-known/oauth-authorization-server").status_code == 404


def test_register_returns_static_metadata(client):
    response = client.post("/register", '{"client_name": "ignored"}', content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {
        "client_id": "commands-agent",
        "token_endpoint_auth_method": "none",
        "redirect_uris": [
            "http://localhost:61696/callback",
            "http://localhost:3000/callback",
            "urn:ietf:wg:oauth:2.0:oob",
        ],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "Commands.com Gateway",
    }


def test_register_appends_the_oob_uri(client, configure):
    configure(oauth_redirect_uris=("http://localhost:5/cb",))
    assert client.post("/register").json()["redirect_uris"] == ["http://localhost:5/cb", "urn:ietf:wg:oauth:2.0:oob"]


# Rate limit (§11).


def test_thirtieth_request_passes_and_the_thirty_first_is_429(client):
    for _ in range(30):
        assert client.post("/oauth/token", {"grant_type": "nope"}).status_code == 400
    response = client.post("/oauth/token", {"grant_type": "nope"})
    assert response.status_code == 429
    assert response.json() == {"error": "too_many_requests"}
    assert response["Retry-After"] == "60"


def test_one_counter_covers_authorize_token_and_revoke(client, configure):
    configure(ingress_rate_window_seconds=120)
    for _ in range(10):
        client.get("/oauth/authorize", authorize_params())
        client.post("/oauth/authorize", authorize_params(demo_email="a@b.c"))
        client.post("/oauth/token/revoke", {"token": ""})
    for path in ("/oauth/token", "/oauth/token/revoke", "/oauth/authorize"):
        response = client.post(path, {})
        assert response.status_code == 429 and response["Retry-After"] == "120"


def test_discovery_jwks_and_register_are_not_limited(client):
    for _ in range(31):
        client.post("/oauth/token", {})
    assert client.get("/.well-known/openid-configuration").status_code == 200
    assert client.get("/.well-known/jwks.json").status_code == 200
    assert client.post("/register").status_code == 200


def test_limit_is_per_client_ip_from_the_proxy_header(client, configure):
    configure(proxy_header="X-Forwarded-For")
    for i in range(30):  # a client changing the left-most entry each time is still one client (decisions.md H4)
        client.post("/oauth/token", {}, HTTP_X_FORWARDED_FOR=f"10.9.9.{i}, 198.51.100.1")
    assert client.post("/oauth/token", {}, HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429
    assert client.post("/oauth/token", {}, HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 400


def test_window_rolls_over(monkeypatch):
    from gateway_site import ratelimit

    assert all(ratelimit.hit_blocking("b", 2, 60, now=600.0) for _ in range(2))
    assert not ratelimit.hit_blocking("b", 2, 60, now=659.9)
    assert ratelimit.hit_blocking("b", 2, 60, now=660.0)  # windows are aligned to the epoch
