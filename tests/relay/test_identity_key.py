"""Identity keys (docs/protocol/devices-and-shares.md §1, §3-5)."""

from __future__ import annotations

import pytest

from relay.models import Device
from tests.relay_helpers import KEY_B64, auth, new_public_key, put_key, register, token_for

pytestmark = pytest.mark.django_db
OWNER = token_for("owner-1", email="Owner@Example.com")
OTHER = token_for("other-2", email="other@example.com")


def error(response):
    return response.status_code, response.json()


def test_first_put_registers_the_device(client):
    response = put_key(
        client, OWNER, "dev_abc", {"algorithm": "ed25519", "public_key": KEY_B64, "display_name": " box "}
    )
    assert response.status_code == 204 and response.content == b""
    device = Device.objects.get(device_id="dev_abc")
    assert (device.owner_uid, device.owner_email, device.public_key, device.display_name) == (
        "owner-1",
        "owner@example.com",
        KEY_B64,
        "box",
    )


def test_put_is_idempotent_and_keeps_the_name(client):
    put_key(client, OWNER, "dev_abc", {"public_key": KEY_B64, "display_name": "box"})
    new_key = new_public_key()
    assert put_key(client, OWNER, "dev_abc", {"public_key": new_key}).status_code == 204
    device = Device.objects.get(device_id="dev_abc")
    assert device.display_name == "box" and device.public_key == new_key


@pytest.mark.parametrize(
    ("device_id", "message"),
    [
        ("%20%20", "device_id is required"),
        ("ab", "invalid device_id"),
        ("a" * 129, "invalid device_id"),
        ("dev!x", "invalid device_id"),
    ],
)
def test_path_id_is_validated(client, device_id, message):
    assert error(put_key(client, OWNER, device_id)) == (400, {"error": message})


def test_percent_encoded_ids_are_decoded(client):
    assert put_key(client, OWNER, "dev%3A1").status_code == 204
    assert Device.objects.filter(device_id="dev:1").exists()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"public_key": "x"', "application/json"),
        ("[1, 2]", "application/json"),
        ('"text"', "application/json"),
        ("", "application/json"),
        ('{"public_key": "' + KEY_B64 + '"}', "text/plain"),
        ('{"public_key": 42}', "application/json"),
        ('{"public_key": "' + KEY_B64 + '", "display_name": 7}', "application/json"),
        (b"\xff\xfe", "application/json"),
    ],
)
def test_bad_bodies_are_invalid_request_body(client, body, content_type):
    assert error(put_key(client, OWNER, "dev_abc", body, content_type=content_type)) == (
        400,
        {"error": "invalid request body"},
    )


def test_json_content_type_may_carry_parameters(client):
    assert put_key(client, OWNER, "dev_abc", content_type="application/json; charset=utf-8").status_code == 204


@pytest.mark.parametrize("algorithm", ["Ed25519", " ed25519", "rsa"])
def test_algorithm_must_be_exactly_ed25519(client, algorithm):
    assert error(put_key(client, OWNER, "dev_abc", {"algorithm": algorithm, "public_key": KEY_B64})) == (
        400,
        {"error": "unsupported algorithm"},
    )


@pytest.mark.parametrize("algorithm", ["", "   "])
def test_blank_algorithm_means_ed25519(client, algorithm):
    assert put_key(client, OWNER, "dev_abc", {"algorithm": algorithm, "public_key": KEY_B64}).status_code == 204


@pytest.mark.parametrize(
    "key",
    ["", "not base64!", "AAAA", KEY_B64[:-4], KEY_B64.replace("/", "_"), "A" * 44, KEY_B64.rstrip("=")],
)
def test_key_must_be_standard_base64_of_32_bytes(client, key):
    assert error(put_key(client, OWNER, "dev_abc", {"public_key": key})) == (400, {"error": "invalid public key"})


def test_line_breaks_in_the_key_are_ignored(client):
    assert put_key(client, OWNER, "dev_abc", {"public_key": KEY_B64[:20] + "\n" + KEY_B64[20:]}).status_code == 204


def test_legacy_key_aliases_in_precedence_order(client):
    other = new_public_key()
    assert put_key(client, OWNER, "dev_a1", {"identityKey": KEY_B64, "identity_key": other}).status_code == 204
    assert Device.objects.get(device_id="dev_a1").public_key == KEY_B64
    assert put_key(client, OWNER, "dev_a2", {"identity_key": other}).status_code == 204
    assert Device.objects.get(device_id="dev_a2").public_key == other
    assert put_key(client, OWNER, "dev_a3", {"public_key": " ", "identity_key": other}).status_code == 204


def test_json_keys_match_case_insensitively(client):
    assert put_key(client, OWNER, "dev_abc", {"Public_Key": KEY_B64}).status_code == 204


def test_overlong_display_name_is_refused(client):
    response = put_key(client, OWNER, "dev_abc", {"public_key": KEY_B64, "display_name": "n" * 129})
    assert error(response) == (400, {"error": "display_name must be at most 128 characters"})


def test_someone_elses_device_cannot_be_overwritten(client):
    put_key(client, OWNER, "dev_abc")
    assert error(put_key(client, OTHER, "dev_abc")) == (403, {"error": "you do not own this device"})


def test_demo_email_fallback_transfers_ownership(client):
    register("dev_abc", "old-uid", email="owner@example.com")
    assert put_key(client, token_for("new-uid", email=" OWNER@example.com"), "dev_abc").status_code == 204
    assert Device.objects.get(device_id="dev_abc").owner_uid == "new-uid"


def test_email_fallback_is_demo_only(client, configure):
    register("dev_abc", "old-uid", email="owner@example.com")
    configure(auth_mode="oidc")
    assert put_key(client, token_for("new-uid", email="owner@example.com"), "dev_abc").status_code == 403


def test_two_hundred_devices_per_owner(client):
    Device.objects.bulk_create([Device(device_id=f"dev_{i:04d}", owner_uid="owner-1") for i in range(200)])
    assert error(put_key(client, OWNER, "dev_new")) == (429, {"error": "too many registered devices"})
    assert put_key(client, OWNER, "dev_0001").status_code == 204  # updating an existing one is fine


def test_put_requires_the_device_scope(client):
    # docs/protocol/decisions.md O2
    response = put_key(client, token_for("owner-1", scope="profile email"), "dev_abc")
    assert error(response) == (
        403,
        {"error": "insufficient_scope", "required_scopes": ["device"], "missing_scopes": ["device"]},
    )


# GET


def test_get_returns_the_key(client):
    put_key(client, OWNER, "dev_abc")
    response = client.get("/gateway/v1/devices/dev_abc/identity-key", **auth(OWNER))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"algorithm", "public_key", "updated_at"}
    assert body["algorithm"] == "ed25519" and body["public_key"] == KEY_B64
    assert body["updated_at"].endswith("Z")


def test_get_errors_in_order(client):
    assert error(client.get("/gateway/v1/devices/dev_none/identity-key", **auth(OWNER))) == (
        404,
        {"error": "device not found"},
    )
    register("dev_abc", "owner-1")
    assert error(client.get("/gateway/v1/devices/dev_abc/identity-key", **auth(OTHER))) == (403, {"error": "forbidden"})
    register("dev_nokey", "owner-1", key="")
    assert error(client.get("/gateway/v1/devices/dev_nokey/identity-key", **auth(OWNER))) == (
        404,
        {"error": "device identity not found"},
    )


def test_get_needs_no_device_scope(client):
    register("dev_abc", "owner-1")
    response = client.get("/gateway/v1/devices/dev_abc/identity-key", **auth(token_for("owner-1", scope="profile")))
    assert response.status_code == 200


def test_get_with_demo_email_fallback(client):
    register("dev_abc", "old-uid", email="owner@example.com")
    assert client.get("/gateway/v1/devices/dev_abc/identity-key", **auth(OWNER)).status_code == 200
