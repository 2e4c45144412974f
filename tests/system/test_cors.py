"""CORS (docs/protocol/config.md §7) with a wildcard and with explicit origins."""

from __future__ import annotations

import pytest

from gateway_site.config import origin_pattern

ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
ALLOWED_HEADERS = "Origin, Content-Type, Accept, Authorization, Cache-Control, Last-Event-ID, X-Idempotency-Key"


def preflight(client, origin, path="/gateway/v1/devices"):
    return client.options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x",
    )


def vary(response) -> set[str]:
    return {item.strip().lower() for item in response.get("Vary", "").split(",") if item.strip()}


@pytest.fixture
def explicit_origins(settings):
    """ALLOW_ORIGINS=https://app.example.com,https://*.example.org as settings.py derives it."""
    settings.CORS_ALLOW_ALL_ORIGINS = False
    settings.CORS_ALLOW_CREDENTIALS = True
    settings.CORS_ALLOWED_ORIGIN_REGEXES = [
        origin_pattern(o) for o in ("https://app.example.com", "https://*.example.org")
    ]


def test_wildcard_preflight_is_204_before_auth_and_routing(client):
    response = preflight(client, "https://anything.example")
    assert response.status_code == 204
    assert response.content == b""
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response
    assert response["Access-Control-Allow-Methods"] == ALLOWED_METHODS
    assert response["Access-Control-Allow-Headers"] == ALLOWED_HEADERS
    assert {"access-control-request-method", "access-control-request-headers", "origin"} <= vary(response)
    assert "Access-Control-Max-Age" not in response
    assert "Access-Control-Expose-Headers" not in response


def test_preflight_on_an_unknown_path_is_still_204(client):
    assert preflight(client, "https://x.example", "/no/such/path").status_code == 204


def test_wildcard_simple_request_gets_star(client):
    response = client.get("/healthz", HTTP_ORIGIN="https://anything.example")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response


def test_options_without_request_method_is_routed(client):
    response = client.options("/healthz", HTTP_ORIGIN="https://x.example")
    assert response.status_code == 405
    assert response.json() == {"error": "Method Not Allowed", "code": 405}


def test_explicit_origin_preflight_echoes_the_origin_with_credentials(client, explicit_origins):
    response = preflight(client, "https://App.Example.com")
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "https://App.Example.com"
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert response["Access-Control-Allow-Methods"] == ALLOWED_METHODS


def test_disallowed_origin_preflight_is_204_without_allow_origin(client, explicit_origins):
    response = preflight(client, "https://evil.example")
    assert response.status_code == 204
    assert "Access-Control-Allow-Origin" not in response
    assert response["Access-Control-Allow-Methods"] == ALLOWED_METHODS
    assert response["Access-Control-Allow-Headers"] == ALLOWED_HEADERS


def test_explicit_origin_simple_request(client, explicit_origins):
    response = client.get("/healthz", HTTP_ORIGIN="https://app.example.com")
    assert response["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert response["Access-Control-Allow-Credentials"] == "true"
    assert "origin" in vary(response)


def test_subdomain_wildcard_matches_any_subdomain(client, explicit_origins):
    response = client.get("/healthz", HTTP_ORIGIN="https://a.b.example.org")
    assert response["Access-Control-Allow-Origin"] == "https://a.b.example.org"
    assert "Access-Control-Allow-Origin" not in client.get("/healthz", HTTP_ORIGIN="https://example.org")
    assert "Access-Control-Allow-Origin" not in client.get("/healthz", HTTP_ORIGIN="http://a.example.org")


def test_disallowed_origin_request_is_still_processed(client, explicit_origins):
    response = client.get("/healthz", HTTP_ORIGIN="https://evil.example")
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response
    assert "origin" in vary(response)


def test_request_without_origin_in_list_mode_varies_on_origin(client, explicit_origins):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "origin" in vary(response)
    assert "Access-Control-Allow-Origin" not in response
