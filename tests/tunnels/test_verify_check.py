"""The signature check of each provider (docs/protocol/webhooks.md §1), with signatures computed here from the
providers' published schemes, and the sealing of secrets at rest."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tunnels import verify

NOW = 1_765_000_000
SECRET = "whsec_test_secret_value"
BODY = b'{"id":"evt_1","type":"payment_intent.succeeded"}'


def mac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def headers(**named: str) -> list[tuple[bytes, bytes]]:
    return [(name.replace("_", "-").lower().encode(), value.encode()) for name, value in named.items()]


def check(provider, pairs, body=BODY, secret=SECRET, **options):
    return verify.check_secret(provider, secret, headers=pairs, body=body, now=NOW, **options)


# GitHub


def test_github_documented_example():
    """GitHub's own example: this secret and payload give this X-Hub-Signature-256."""
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    secret, payload = "It's a Secret to Everybody", b"Hello, World!"
    assert "sha256=" + mac(secret, payload) == expected
    result = check("github", headers(X_Hub_Signature_256=expected), body=payload, secret=secret)
    assert result == verify.VerifyResult(True, "verified")


@pytest.mark.parametrize(
    ("pairs", "body", "secret", "reason"),
    [
        (headers(X_Hub_Signature_256="sha256=" + mac(SECRET, BODY)), BODY + b" ", SECRET, "signature mismatch"),
        (headers(X_Hub_Signature_256="sha256=" + mac(SECRET, BODY)), BODY, "another-secret", "signature mismatch"),
        ([], BODY, SECRET, "missing or malformed signature header"),
        (headers(X_Hub_Signature_256=mac(SECRET, BODY)), BODY, SECRET, "missing or malformed signature header"),
        (headers(X_Hub_Signature_256="sha256=zz"), BODY, SECRET, "signature mismatch"),
        (headers(X_Hub_Signature_256="sha256=" + mac(SECRET, BODY)[:-2]), BODY, SECRET, "signature mismatch"),
        (
            headers(X_Hub_Signature_256="sha256=" + mac(SECRET, BODY)) * 2,
            BODY,
            SECRET,
            "missing or malformed signature header",
        ),
        (headers(X_Hub_Signature_256="sha256=" + "a" * 100_000), BODY, SECRET, "missing or malformed signature header"),
    ],
    ids=["tampered-body", "wrong-secret", "missing", "no-prefix", "not-hex", "short", "duplicate", "huge"],
)
def test_github_refusals(pairs, body, secret, reason):
    assert check("github", pairs, body=body, secret=secret) == verify.VerifyResult(False, reason)


def test_uppercase_hex_is_the_same_digest():
    upper = "sha256=" + mac(SECRET, BODY).upper()
    assert check("github", headers(X_Hub_Signature_256=upper)).ok


def test_raw_bytes_are_signed_not_a_decoding():
    body = b"\xff\xfe\x00 not utf-8"
    assert check("github", headers(X_Hub_Signature_256="sha256=" + mac(SECRET, body)), body=body).ok


# Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`, signed payload "<t>." + body


def stripe_header(t: int, *signatures: str) -> list[tuple[bytes, bytes]]:
    return headers(Stripe_Signature=",".join([f"t={t}", *(f"v1={s}" for s in signatures)]))


def stripe_sig(t: int, body: bytes = BODY, secret: str = SECRET) -> str:
    return mac(secret, f"{t}.".encode() + body)


def test_stripe_accepts_any_of_several_v1_and_ignores_other_schemes():
    good = stripe_sig(NOW)
    assert check("stripe", stripe_header(NOW, good)).ok
    assert check("stripe", stripe_header(NOW, mac("old-secret-123", BODY), good)).ok
    with_v0 = headers(Stripe_Signature=f"t={NOW},v0={'0' * 64},v1={good}")
    assert check("stripe", with_v0).ok


@pytest.mark.parametrize(
    ("pairs", "reason"),
    [
        (stripe_header(NOW, stripe_sig(NOW, BODY + b"x")), "signature mismatch"),
        (stripe_header(NOW, stripe_sig(NOW, secret="wrong-secret")), "signature mismatch"),
        (stripe_header(NOW - 301, stripe_sig(NOW - 301)), "timestamp outside tolerance"),
        (stripe_header(NOW + 301, stripe_sig(NOW + 301)), "timestamp outside tolerance"),
        (headers(Stripe_Signature=f"t=abc,v1={stripe_sig(NOW)}"), "malformed timestamp"),
        (headers(Stripe_Signature=f"t=-5,v1={stripe_sig(NOW)}"), "malformed timestamp"),
        (headers(Stripe_Signature=f"v1={stripe_sig(NOW)}"), "missing or malformed Stripe-Signature"),
        (headers(Stripe_Signature=f"t={NOW}"), "missing or malformed Stripe-Signature"),
        (headers(Stripe_Signature=f"t={NOW},t={NOW},v1={stripe_sig(NOW)}"), "missing or malformed Stripe-Signature"),
        (headers(Stripe_Signature="garbage"), "missing or malformed Stripe-Signature"),
        ([], "missing or malformed Stripe-Signature"),
        (stripe_header(NOW, stripe_sig(NOW)) * 2, "missing or malformed Stripe-Signature"),
        (stripe_header(NOW, *["0" * 64] * 40), "missing or malformed Stripe-Signature"),
    ],
    ids=[
        "tampered",
        "wrong-secret",
        "stale",
        "future",
        "non-numeric-t",
        "negative-t",
        "no-t",
        "no-v1",
        "two-t",
        "garbage",
        "missing",
        "duplicate",
        "huge",
    ],
)
def test_stripe_refusals(pairs, reason):
    assert check("stripe", pairs) == verify.VerifyResult(False, reason)


def test_stripe_tolerance_is_inclusive_and_configurable():
    assert check("stripe", stripe_header(NOW - 300, stripe_sig(NOW - 300))).ok
    assert check("stripe", stripe_header(NOW + 300, stripe_sig(NOW + 300))).ok
    assert not check("stripe", stripe_header(NOW - 10, stripe_sig(NOW - 10)), tolerance_seconds=5).ok


# Slack: `X-Slack-Request-Timestamp` and `X-Slack-Signature: v0=<hex>` over "v0:<ts>:" + body


def slack(ts: str, body: bytes = BODY, secret: str = SECRET, prefix: str = "v0=") -> list[tuple[bytes, bytes]]:
    signature = prefix + mac(secret, f"v0:{ts}:".encode() + body)
    return headers(X_Slack_Request_Timestamp=ts, X_Slack_Signature=signature)


def test_slack_accepts_its_scheme():
    assert check("slack", slack(str(NOW))).ok
    assert check("slack", slack(str(NOW - 60)), tolerance_seconds=60).ok


@pytest.mark.parametrize(
    ("pairs", "reason"),
    [
        (slack(str(NOW), body=BODY + b"!"), "signature mismatch"),
        (slack(str(NOW), secret="not-the-secret"), "signature mismatch"),
        (slack(str(NOW - 301)), "timestamp outside tolerance"),
        (slack(str(NOW + 301)), "timestamp outside tolerance"),
        (slack("12.5"), "malformed timestamp"),
        (slack(str(NOW), prefix="v1="), "missing or malformed Slack signature headers"),
        (slack(str(NOW))[:1], "missing or malformed Slack signature headers"),
        (slack(str(NOW))[1:], "missing or malformed Slack signature headers"),
        (slack(str(NOW)) + slack(str(NOW))[:1], "missing or malformed Slack signature headers"),
    ],
    ids=["tampered", "wrong-secret", "stale", "future", "fractional-ts", "wrong-version", "no-sig", "no-ts", "dup-ts"],
)
def test_slack_refusals(pairs, reason):
    assert check("slack", pairs) == verify.VerifyResult(False, reason)


# hmac_sha256: `<hex>` or `sha256=<hex>` in the named header


@pytest.mark.parametrize("prefix", ["", "sha256=", "SHA256="])
def test_hmac_sha256_with_or_without_prefix(prefix):
    pairs = headers(X_Signature=prefix + mac(SECRET, BODY))
    assert check("hmac_sha256", pairs, header="x-signature").ok


def test_hmac_sha256_refusals():
    assert check("hmac_sha256", headers(X_Other=mac(SECRET, BODY)), header="x-signature").reason == (
        "missing or malformed signature header"
    )
    assert check("hmac_sha256", headers(X_Signature=mac(SECRET, BODY + b"1")), header="x-signature").reason == (
        "signature mismatch"
    )
    assert check("hmac_sha256", headers(X_Signature="md5=" + mac(SECRET, BODY)), header="x-signature").reason == (
        "signature mismatch"
    )


# The field and the secret at rest


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("github", "verify must be an object or null"),
        ({"provider": "gitlab", "secret": SECRET}, "verify.provider must be one of github, stripe, slack, hmac_sha256"),
        ({"provider": "github"}, "verify.secret is required and must be 8-512 characters long"),
        ({"provider": "github", "secret": "short"}, "verify.secret is required and must be 8-512 characters long"),
        ({"provider": "github", "secret": "s" * 513}, "verify.secret is required and must be 8-512 characters long"),
        ({"provider": "github", "secret": 12345678}, "verify.secret is required and must be 8-512 characters long"),
        (
            {"provider": "stripe", "secret": SECRET, "tolerance_seconds": 0},
            "verify.tolerance_seconds must be an integer between 1 and 3600",
        ),
        (
            {"provider": "stripe", "secret": SECRET, "tolerance_seconds": 3601},
            "verify.tolerance_seconds must be an integer between 1 and 3600",
        ),
        (
            {"provider": "stripe", "secret": SECRET, "tolerance_seconds": "60"},
            "verify.tolerance_seconds must be an integer between 1 and 3600",
        ),
        ({"provider": "hmac_sha256", "secret": SECRET}, "verify.header is required for the hmac_sha256 provider"),
        (
            {"provider": "hmac_sha256", "secret": SECRET, "header": "X Sig"},
            "verify.header must be a valid HTTP header name (at most 100 characters)",
        ),
        (
            {"provider": "hmac_sha256", "secret": SECRET, "header": "x" * 101},
            "verify.header must be a valid HTTP header name (at most 100 characters)",
        ),
        (
            {"provider": "github", "secret": SECRET, "header": "X-Sig"},
            "verify.header is only used by the hmac_sha256 provider",
        ),
        ({"provider": "github", "secret": SECRET, "extra": 1}, "verify has an unknown field: extra"),
    ],
)
def test_field_errors(value, message):
    with pytest.raises(verify.VerifyFieldError) as raised:
        verify.parse_field(value)
    assert str(raised.value) == message


def test_field_defaults_and_rendering():
    parsed = verify.parse_field({"provider": "hmac_sha256", "secret": SECRET, "header": "X-Signature"})
    assert parsed == verify.VerifySettings("hmac_sha256", SECRET, 300, "x-signature")
    assert verify.render("hmac_sha256", "x-signature", 300) == {
        "provider": "hmac_sha256",
        "configured": True,
        "header": "x-signature",
    }
    assert verify.render("slack", "", 60) == {"provider": "slack", "configured": True, "tolerance_seconds": 60}
    assert verify.render("github", "", 300) == {"provider": "github", "configured": True}
    assert verify.render("", "", 300) is None


def test_sealing_is_authenticated_and_bound_to_the_route():
    route, other = "rt_" + "1" * 32, "rt_" + "2" * 32
    sealed = verify.seal(SECRET, route)
    assert sealed.startswith("v1:") and SECRET not in sealed
    assert verify.seal(SECRET, route) != sealed  # a fresh nonce each time
    assert verify.unseal(sealed, route) == SECRET
    assert verify.unseal(sealed, other) is None
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    assert verify.unseal(tampered, route) is None
    assert verify.unseal("v2:" + sealed[3:], route) is None
    assert verify.unseal("v1:not base64!", route) is None


def test_a_changed_signing_key_cannot_open_old_secrets(configure):
    route = "rt_" + "3" * 32
    sealed = verify.seal(SECRET, route)
    configure(jwt_signing_key="k" * 48)
    assert verify.unseal(sealed, route) is None
    part = verify.snapshot_part("github", sealed, "", 300)
    assert part is not None
    result = verify.check(route, part, headers(X_Hub_Signature_256="sha256=" + mac(SECRET, BODY)), BODY)
    assert result == verify.VerifyResult(False, "secret cannot be opened")
