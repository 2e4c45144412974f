"""System endpoints (docs/protocol/system-and-console.md §2-3)."""

from __future__ import annotations

import re

import pytest

from gateway_site import __version__

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def test_index_lists_the_endpoints(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "name": "OSS Commands Gateway",
        "version": __version__,
        "auth_mode": "demo",
        "state_backend": "memory",
        "endpoints": {
            "console": "/console",
            "healthz": "/healthz",
            "readyz": "/readyz",
            "oauth": "/oauth",
            "gateway": "/gateway/v1",
            "webhook_ingress": "/integrations/:route_id/:route_token",
            "integration_routes": "/gateway/v1/integrations/routes",
            "openapi": "/openapi.yaml",
        },
    }


@pytest.mark.parametrize("path", ["/health", "/healthz"])
def test_liveness(client, path):
    response = client.get(path)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "service", "version", "timestamp", "auth_mode", "state_backend"}
    assert (body["status"], body["service"], body["version"]) == ("ok", "oss-commands-gateway", __version__)
    assert (body["auth_mode"], body["state_backend"]) == ("demo", "memory")
    assert TIMESTAMP.match(body["timestamp"])


@pytest.mark.django_db
def test_readiness(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "state_backend", "timestamp"}
    assert body["status"] == "ready" and body["state_backend"] == "memory"
    assert TIMESTAMP.match(body["timestamp"])


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/health", "/healthz", "/readyz"])
def test_head_is_answered_without_a_body(client, path):
    response = client.head(path)
    assert response.status_code == 200
    assert response.content == b""


def test_health_reports_the_configured_auth_mode(client, settings):
    settings.GATEWAY = type(settings.GATEWAY)(**{**settings.GATEWAY.__dict__, "auth_mode": "oidc"})
    assert client.get("/healthz").json()["auth_mode"] == "oidc"


def test_the_openapi_document_is_served(client):
    from tests.helpers import ROOT

    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml; charset=utf-8"
    assert response.content == (ROOT / "docs" / "openapi.yaml").read_bytes()
