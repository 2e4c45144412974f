"""The EdDSA access token (docs/protocol/oauth.md §8): key derivation vectors, JWKS, claims, and stateless
validation."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway_site.auth import authenticate
from gateway_site.errors import Unauthorized
from gateway_site.signing import InvalidToken, derive_signing_key, verify_access_token
from oauthapp.tokens import Identity, issue_access_token
from tests.oauth_helpers import jwt_header, jwt_payload

ISS = "http://localhost:8080"
AUD = "commands-gateway"


def test_spec_key_derivation_vector_for_the_test_key():
    key = derive_signing_key("test-signing-secret-at-least-32-bytes-long")
    assert key.jwk() == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": "GhgHsC2tcAi5HxXW87DyTvk1uD6wXhfCFqjF35Ds9DA",
        "use": "sig",
        "alg": "EdDSA",
        "kid": "9XCAWyRUzcM",
    }


def test_pinned_key_derivation_vector():
    key = derive_signing_key("  pinned-test-secret-for-stability-check  ")
    assert key.jwk()["x"] == "KUN3ntkihB9TYDA1G8QHbjOMw-44rWFpD5V4Wb6jQFA"
    assert key.kid == "NZaQ7hPof18"


@pytest.mark.parametrize("path", ["/.well-known/jwks.json", "/oauth/.well-known/jwks.json"])
def test_jwks_publishes_the_one_key(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {"keys": [derive_signing_key("test-signing-secret-at-least-32-bytes-long").jwk()]}


def test_issued_token_has_the_contract_header_and_claims():
    token, expires_in = issue_access_token(
        Identity("demo-3025bc58f9e54175", "alice@example.com", "Alice"), "profile email", now=1767225600
    )
    assert expires_in == 3600
    assert jwt_header(token) == {"alg": "EdDSA", "kid": "9XCAWyRUzcM", "typ": "JWT"}
    assert jwt_payload(token) == {
        "email": "alice@example.com",
        "name": "Alice",
        "scope": "profile email",
        "auth_mode": "demo",
        "iss": ISS,
        "sub": "demo-3025bc58f9e54175",
        "aud": [AUD],
        "exp": 1767229200,
        "nbf": 1767225600,
        "iat": 1767225600,
    }


def test_empty_email_name_and_scope_are_omitted():
    token, _ = issue_access_token(Identity("client:bot"), "")
    claims = jwt_payload(token)
    assert "email" not in claims and "name" not in claims and "scope" not in claims and "jti" not in claims


def test_demo_tokens_use_the_demo_ttl(configure):
    configure(demo_token_ttl_seconds=120, access_token_ttl_seconds=999)
    token, expires_in = issue_access_token(Identity("u"), "profile")
    assert expires_in == 120 and jwt_payload(token)["exp"] - jwt_payload(token)["iat"] == 120
    configure(auth_mode="oidc")
    assert issue_access_token(Identity("u"), "profile")[1] == 999


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def upstream_style_token(claims: dict, secret: str = "test-signing-secret-at-least-32-bytes-long") -> str:
    """A token built by hand the way the upstream gateway builds it (not through our issuer)."""
    private = derive_signing_key(secret).private
    header = {"alg": "EdDSA", "kid": derive_signing_key(secret).kid, "typ": "JWT"}
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return signing_input + "." + b64(private.sign(signing_input.encode()))


def claims(**overrides):
    now = int(time.time())
    base = {"sub": "demo-3025bc58f9e54175", "iss": ISS, "aud": [AUD], "exp": now + 600, "nbf": now, "iat": now}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_a_token_minted_upstream_with_the_same_key_validates():
    token = upstream_style_token(claims(email="alice@example.com", name="Alice", scope="profile email device"))
    principal = authenticate(f"Bearer {token}")
    assert principal.uid == "demo-3025bc58f9e54175"
    assert principal.email == "alice@example.com" and principal.name == "Alice"
    assert principal.scopes == ("profile", "email", "device")


def test_audience_may_be_a_string():
    assert verify_access_token(upstream_style_token(claims(aud=AUD)))["sub"]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: claims(iss="http://evil"), id="wrong-iss"),
        pytest.param(lambda: claims(aud=["other"]), id="wrong-aud"),
        pytest.param(lambda: claims(exp=int(time.time()) - 1), id="expired"),
        pytest.param(lambda: claims(nbf=int(time.time()) + 60), id="nbf-in-future"),
        pytest.param(lambda: claims(sub="   "), id="blank-sub"),
        pytest.param(lambda: claims(sub=None), id="no-sub"),
        pytest.param(lambda: claims(exp=None), id="no-exp"),
    ],
)
def test_invalid_claims_are_rejected(bad):
    # The claims are built when the test runs: times computed at collection would drift in a long run.
    with pytest.raises(InvalidToken):
        verify_access_token(upstream_style_token(bad()))


def test_wrong_key_is_rejected():
    with pytest.raises(InvalidToken):
        verify_access_token(upstream_style_token(claims(), secret="another-signing-secret-of-32-bytes-or-more"))


def test_other_algorithms_are_rejected():
    public = derive_signing_key("test-signing-secret-at-least-32-bytes-long").public_raw
    hs = jwt.encode(claims(), public, algorithm="HS256")
    other_ed = jwt.encode(claims(), Ed25519PrivateKey.generate(), algorithm="EdDSA")
    unsigned = b64(b'{"alg":"none"}') + "." + b64(json.dumps(claims()).encode()) + "."
    for token in (hs, other_ed, unsigned, "not.a.jwt", "", "a" * 5000):
        with pytest.raises(InvalidToken):
            verify_access_token(token)


def test_rejected_token_text_is_the_decided_one():
    with pytest.raises(Unauthorized) as caught:
        authenticate("Bearer " + upstream_style_token(claims(iss="http://evil")))
    assert caught.value.body() == {"error": "invalid access token: invalid jwt token"}


class TestVerifiedTokenCache:
    """A verified token is remembered by digest until exp (gateway_site.signing.VerifiedTokens)."""

    @pytest.fixture
    def clock(self, monkeypatch):
        from gateway_site import signing

        now = [time.time()]
        monkeypatch.setattr(signing, "_VERIFIED", signing.VerifiedTokens(clock=lambda: now[0]))
        return now

    @pytest.fixture
    def decodes(self, monkeypatch):
        calls = []
        real = jwt.decode

        def counting(*args, **kwargs):
            calls.append(args[0])
            return real(*args, **kwargs)

        monkeypatch.setattr(jwt, "decode", counting)
        return calls

    def test_a_token_is_checked_once_and_the_claims_are_a_fresh_copy(self, clock, decodes):
        token = upstream_style_token(claims())
        first = verify_access_token(token)
        first["sub"] = "changed by the caller"
        second = verify_access_token(token)
        assert second["sub"] == "demo-3025bc58f9e54175"
        assert decodes == [token]

    def test_a_cached_token_is_refused_from_its_exp_on(self, clock, decodes):
        token = upstream_style_token(claims(exp=int(clock[0]) + 30))
        verify_access_token(token)
        clock[0] += 29
        verify_access_token(token)
        assert len(decodes) == 1
        clock[0] = int(clock[0]) + 2  # now >= exp: the cache no longer answers, and PyJWT's real clock decides
        verify_access_token(token)  # still valid by the wall clock, so it is checked again
        assert len(decodes) == 2

    def test_claims_with_a_future_nbf_or_without_a_numeric_exp_are_not_stored(self):
        from gateway_site.signing import VerifiedTokens

        cache = VerifiedTokens(clock=lambda: 1000.0)
        cache.put(b"later", {"exp": 2000, "nbf": 1001})
        cache.put(b"no-exp", {"sub": "x"})
        cache.put(b"bool-exp", {"exp": True})
        cache.put(b"now", {"exp": 2000, "nbf": 1000})
        assert cache.get(b"later") is None and cache.get(b"no-exp") is None and cache.get(b"bool-exp") is None
        assert cache.get(b"now") == {"exp": 2000, "nbf": 1000}

    @pytest.mark.parametrize(
        "change",
        [
            pytest.param({"jwt_signing_key": "another-signing-secret-of-32-bytes-or-more"}, id="key"),
            pytest.param({"jwt_audience": "another-audience"}, id="audience"),
            pytest.param({"public_base_url": "https://elsewhere.example"}, id="issuer"),
        ],
    )
    def test_a_change_of_key_audience_or_issuer_is_not_answered_from_the_cache(self, clock, configure, change):
        token = upstream_style_token(claims())
        verify_access_token(token)
        configure(**change)
        with pytest.raises(InvalidToken):
            verify_access_token(token)

    def test_a_rejected_token_is_rejected_every_time(self, clock, decodes):
        token = upstream_style_token(claims(iss="http://evil"))
        for _ in range(2):
            with pytest.raises(InvalidToken):
                verify_access_token(token)
        assert len(decodes) == 2

    def test_the_map_is_bounded_expired_entries_first_then_the_oldest(self):
        from gateway_site.signing import VerifiedTokens

        now = [1000.0]
        cache = VerifiedTokens(limit=3, clock=lambda: now[0])
        cache.put(b"a", {"exp": 2000})
        cache.put(b"b", {"exp": 1001})
        cache.put(b"c", {"exp": 3000})
        now[0] = 1500.0
        cache.put(b"d", {"exp": 4000})  # b has expired: it goes, a stays
        assert len(cache) == 3 and cache.get(b"a") is not None and cache.get(b"b") is None
        cache.put(b"e", {"exp": 4000})  # nothing expired: the oldest (a) goes
        assert len(cache) == 3 and cache.get(b"a") is None and cache.get(b"e") is not None
