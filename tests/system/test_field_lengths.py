"""Every caller-supplied string that is stored is length-checked where it is accepted, so SQLite (which never
enforces a column size) and PostgreSQL (which would fail the insert) answer alike: a 400 naming the field."""

from __future__ import annotations

import pytest

from gateway_site.ids import EMAIL_MAX_LENGTH, canonical_email
from tests.relay_helpers import auth, register, token_for


def test_an_email_longer_than_its_column_is_no_email():
    local = "a" * (EMAIL_MAX_LENGTH - len("@example.com"))
    assert canonical_email(f"{local}@example.com") == f"{local}@example.com"
    assert canonical_email(f"a{local}@example.com") == ""


@pytest.mark.django_db
def test_an_invite_to_an_overlong_email_is_refused(client):
    register("dev_lengths01", "owner-1", email="owner@example.com")
    body = {"deviceId": "dev_lengths01", "email": "b" * 400 + "@example.com"}
    response = client.post(
        "/gateway/v1/shares/invites", body, content_type="application/json", **auth(token_for("owner-1"))
    )
    assert (response.status_code, response.json()) == (400, {"error": "invalid email"})


@pytest.mark.django_db
def test_an_overlong_interface_id_is_refused(client):
    register("dev_lengths02", "owner-1")
    body = {"device_id": "dev_lengths02", "interface_type": "http", "interface_id": "i" * 256}
    response = client.post(
        "/gateway/v1/integrations/routes", body, content_type="application/json", **auth(token_for("owner-1"))
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "invalid_request", "message": "interface_id must be at most 255 characters"}
    }


@pytest.mark.django_db
def test_an_overlong_client_credentials_client_id_is_refused(client):
    response = client.post("/oauth/token", {"grant_type": "client_credentials", "client_id": "c" * 300})
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": "client_id is too long"}
    ok = client.post("/oauth/token", {"grant_type": "client_credentials", "client_id": "c" * 248})
    assert ok.status_code == 200
