"""firebase and oidc sign-in: ID tokens verified against a JWKS served by the test itself (docs/protocol/oauth.md
§3.3)."""

from __future__ import annotations

import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from oauthapp import verifiers
from oauthapp.verifiers import (
    FirebaseVerifier,
    OidcVerifier,
    ProviderInitError,
    TokenMissingSubject,
    VerificationFailed,
)
from tests.helpers import clean_env, free_port, run_manage
from tests.jwks_server import identity_provider
from tests.oauth_helpers import authorize_params, exchange, jwt_payload


@pytest.fixture
def provider():
    with identity_provider() as p:
        yield p


@pytest.fixture(autouse=True)
def _fresh_verifiers():
    verifiers._verifiers.clear()
    yield
    verifiers._verifiers.clear()


def oidc(provider) -> OidcVerifier:
    return OidcVerifier.discover(provider.base_url, "client-1")


def test_oidc_valid_token(provider):
    identity = oidc(provider).verify(provider.id_token(email="a@example.com", preferred_username="ann"))
    assert (identity.uid, identity.email, identity.name) == ("user-1", "a@example.com", "ann")


def test_oidc_name_fallbacks(provider):
    verifier = oidc(provider)
    assert verifier.verify(provider.id_token(name="Ann", preferred_username="ann")).name == "Ann"
    assert verifier.verify(provider.id_token(email="a@example.com")).name == "a@example.com"
    assert verifier.verify(provider.id_token()).name == "user-1"


def test_oidc_audience_may_be_a_list(provider):
    assert oidc(provider).verify(provider.id_token(aud=["other", "client-1"])).uid == "user-1"


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": int(time.time()) - 10}, id="expired"),
        pytest.param({"aud": "other-client"}, id="wrong-audience"),
        pytest.param({"iss": "https://evil.example"}, id="wrong-issuer"),
        pytest.param({"exp": None}, id="no-exp"),
    ],
)
def test_oidc_rejections(provider, claims):
    with pytest.raises(VerificationFailed):
        oidc(provider).verify(provider.id_token(**claims))


def test_oidc_unknown_kid_is_rejected(provider):
    with pytest.raises(VerificationFailed):
        oidc(provider).verify(provider.id_token(kid="unknown-kid"))


def test_oidc_foreign_signature_is_rejected(provider):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(VerificationFailed):
        oidc(provider).verify(provider.id_token(key=other))


def test_oidc_missing_subject(provider):
    with pytest.raises(TokenMissingSubject):
        oidc(provider).verify(provider.id_token(sub=""))


def test_a_subject_longer_than_a_stored_uid_is_refused(provider):
    with pytest.raises(VerificationFailed, match="subject too long"):
        oidc(provider).verify(provider.id_token(sub="s" * 256))
    assert oidc(provider).verify(provider.id_token(sub="s" * 255)).uid == "s" * 255


@pytest.mark.parametrize("verified", [False, None, "false", 1])
def test_an_email_not_marked_verified_is_dropped(provider, verified):
    """Only `email_verified: true` lets an email match share invites (None: the claim is absent)."""
    identity = oidc(provider).verify(provider.id_token(email="a@example.com", email_verified=verified))
    assert identity.email == "" and identity.name == "user-1"


def test_a_verified_email_is_kept(provider):
    assert oidc(provider).verify(provider.id_token(email="a@example.com")).email == "a@example.com"


def test_jwks_is_cached(provider):
    verifier = oidc(provider)
    for _ in range(3):
        verifier.verify(provider.id_token())
    assert provider.jwks_requests == 1


def test_unreachable_jwks_fails_verification(provider):
    verifier = OidcVerifier(provider.base_url, "client-1", f"http://127.0.0.1:{free_port()}/jwks.json", ["RS256"])
    with pytest.raises(VerificationFailed):
        verifier.verify(provider.id_token())


def test_unreachable_discovery_is_a_provider_init_error():
    with pytest.raises(ProviderInitError, match="^oidc provider init: "):
        OidcVerifier.discover(f"http://127.0.0.1:{free_port()}", "client-1")


def firebase_token(provider, **claims):
    now = int(time.time())
    base = {"iss": "https://securetoken.google.com/proj-1", "aud": "proj-1", "auth_time": now - 5}
    return provider.id_token(**{**base, **claims})


def test_firebase_valid_token(provider):
    verifier = FirebaseVerifier("proj-1", f"{provider.base_url}/jwks.json")
    identity = verifier.verify(firebase_token(provider, email="f@example.com", display_name="Fay"))
    assert (identity.uid, identity.email, identity.name) == ("user-1", "f@example.com", "Fay")


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"aud": "other"}, id="wrong-audience"),
        pytest.param({"iss": "https://securetoken.google.com/other"}, id="wrong-issuer"),
        pytest.param({"exp": int(time.time()) - 1}, id="expired"),
        pytest.param({"auth_time": int(time.time()) + 3600}, id="future-auth-time"),
        pytest.param({"auth_time": None}, id="no-auth-time"),
        pytest.param({"iat": None}, id="no-iat"),
    ],
)
def test_firebase_rejections(provider, claims):
    verifier = FirebaseVerifier("proj-1", f"{provider.base_url}/jwks.json")
    with pytest.raises(VerificationFailed):
        verifier.verify(firebase_token(provider, **claims))


# Through the authorize endpoint.


@pytest.fixture
def oidc_mode(provider, configure):
    configure(auth_mode="oidc", oidc_issuer_url=provider.base_url, oidc_client_id="client-1")
    return provider


@pytest.mark.django_db
def test_oidc_sign_in_issues_a_code_with_the_upstream_identity(client, oidc_mode):
    token = oidc_mode.id_token(email="a@example.com", name="Ann")
    response = client.post("/oauth/authorize", authorize_params(id_token=token, response_mode="json"))
    assert response.status_code == 200
    claims = jwt_payload(exchange(client, response.json()["code"]).json()["access_token"])
    assert (claims["sub"], claims["email"], claims["name"], claims["auth_mode"]) == (
        "user-1",
        "a@example.com",
        "Ann",
        "oidc",
    )


@pytest.mark.django_db
def test_id_token_sources_in_precedence_order(client, oidc_mode):
    good = oidc_mode.id_token(sub="from-header")
    response = client.post(
        "/oauth/authorize",
        authorize_params(id_token="garbage", firebase_token="garbage", response_mode="json"),
        HTTP_AUTHORIZATION=f"Bearer {good}",
    )
    assert response.status_code == 200
    response = client.post(
        "/oauth/authorize", authorize_params(firebase_token=oidc_mode.id_token(sub="fb"), response_mode="json")
    )
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "id token is required"),
        ({"id_token": "not-a-jwt"}, "id token verification failed"),
    ],
)
def test_oidc_authorize_errors(client, oidc_mode, params, message):
    response = client.post("/oauth/authorize", authorize_params(**params))
    assert (response.status_code, response.json()) == (401, {"error": message})


@pytest.mark.django_db
def test_token_without_subject_is_refused(client, oidc_mode):
    response = client.post("/oauth/authorize", authorize_params(id_token=oidc_mode.id_token(sub="")))
    assert (response.status_code, response.json()) == (401, {"error": "token missing subject"})


@pytest.mark.django_db
def test_unconfigured_verifier(client, configure):
    configure(auth_mode="oidc", oidc_issuer_url=f"http://127.0.0.1:{free_port()}", oidc_client_id="c")
    response = client.post("/oauth/authorize", authorize_params(id_token="x.y.z"))
    assert (response.status_code, response.json()) == (401, {"error": "identity verifier is not configured"})


@pytest.mark.django_db
def test_firebase_mode_through_authorize(client, provider, configure, settings):
    configure(auth_mode="firebase", firebase_project_id="proj-1")
    settings.GATEWAY_FIREBASE_JWKS_URL = f"{provider.base_url}/jwks.json"
    response = client.post(
        "/oauth/authorize", authorize_params(id_token=firebase_token(provider), response_mode="json")
    )
    assert response.status_code == 200


def test_unreachable_oidc_issuer_stops_start_up():
    env = clean_env(AUTH_MODE="oidc", OIDC_ISSUER_URL=f"http://127.0.0.1:{free_port()}", OIDC_CLIENT_ID="c")
    result = run_manage("shell", "--no-imports", "-c", "import gateway_site.asgi", env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("startup failed: oidc verifier init: oidc provider init: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
