"""Transport tokens (docs/protocol/relay.md §5.7) against the vectors produced by the upstream gateway."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gateway_site.config import derive_transport_secret
from relay import transport
from relay.frames import check_transport
from relay.transport import TransportError
from tests.helpers import vector

VECTORS = vector("transport_token.json")
FUTURE = 1_700_000_000


def test_secret_derivation_vector():
    derivation = VECTORS["secret_derivation"]
    assert derive_transport_secret(derivation["jwt_signing_key"]) == derivation["derived_transport_token_secret"]


@pytest.mark.parametrize("case", VECTORS["tokens"], ids=lambda c: c["connection_id"])
def test_minted_tokens_match_the_vectors(case):
    payload = transport.payload(case["device_id"], case["connection_id"], case["expires_at"])
    assert payload.hex() == case["payload_hex"]
    assert transport.mint(case["secret"], case["device_id"], case["connection_id"], case["expires_at"]) == case["token"]


@pytest.mark.parametrize("case", VECTORS["tokens"], ids=lambda c: c["connection_id"])
def test_vector_tokens_verify_before_their_expiry(case):
    transport.verify(
        case["secret"], case["token"], device_id=case["device_id"], connection_id=case["connection_id"], now=FUTURE
    )


CASE = VECTORS["tokens"][0]


def violation(token, *, device=CASE["device_id"], connection=CASE["connection_id"], now=FUTURE, secret=CASE["secret"]):
    with pytest.raises(TransportError) as caught:
        transport.verify(secret, token, device_id=device, connection_id=connection, now=now)
    return str(caught.value)


def test_violations_are_named():
    body, signature = CASE["token"].split(".")
    assert violation(None) == "missing_transport_token"
    assert violation("") == "missing_transport_token"
    assert violation("nodot") == "malformed_token"
    assert violation("!!!." + signature) == "invalid_token_encoding"
    assert violation(body + ".***") == "invalid_signature_encoding"
    assert violation(body + "." + signature[:-2] + "AA") == "invalid_signature"
    assert violation(CASE["token"], secret="another-secret") == "invalid_signature"
    assert violation(CASE["token"], device="dev_other") == "device_id_mismatch"
    assert violation(CASE["token"], connection="agt:2") == "connection_id_mismatch"
    assert violation(CASE["token"], now=1893456001) == "token_expired"


def test_bad_payloads_and_expiry_formats():
    secret = "s"
    body = b"\x00\x10short"  # declares 16 bytes, holds 5
    signed = transport._b64(body) + "." + transport._b64(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    assert violation(signed, secret=secret).startswith("invalid_token_payload")
    token = transport.mint(secret, CASE["device_id"], CASE["connection_id"], "tomorrow")
    assert violation(token, secret=secret) == "invalid_expiry"


def test_t_seq_must_strictly_increase():
    assert transport.check_t_seq(5, 4) == 5
    assert transport.check_t_seq(9, 4) == 9  # gaps allowed
    for value in (4, 3):
        with pytest.raises(TransportError, match="transport_replay_detected"):
            transport.check_t_seq(value, 4)
    for bad in (0, -1, 1.5, "2", True, None):
        with pytest.raises(TransportError, match="invalid_t_seq"):
            transport.check_t_seq(bad, 0)


def check(frame, mode):
    return check_transport(
        frame,
        secret=CASE["secret"],
        mode=mode,
        device_id=CASE["device_id"],
        connection_id=CASE["connection_id"],
        last_t_seq=3,
        now=FUTURE,
    )


def test_optional_mode_accepts_frames_without_a_token_and_verifies_those_with_one():
    assert check({"type": "session.result"}, "optional") == 3
    assert check({"transport_token": CASE["token"], "t_seq": 4}, "optional") == 4
    with pytest.raises(TransportError):
        check({"transport_token": "bad.token", "t_seq": 4}, "optional")
    with pytest.raises(TransportError):
        check({"transport_token": CASE["token"], "t_seq": 3}, "optional")


def test_required_mode_needs_a_token():
    with pytest.raises(TransportError, match="missing_transport_token"):
        check({"type": "session.result"}, "required")
    assert check({"transport_token": CASE["token"], "t_seq": 10}, "required") == 10
