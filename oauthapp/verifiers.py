"""Upstream ID-token verification for AUTH_MODE=firebase and AUTH_MODE=oidc (docs/protocol/oauth.md §3.3).

Signatures are checked against the provider's JWKS with pyjwt's `PyJWKClient` (keys cached), plus issuer, audience
and expiry. Any failure is reported to the caller as one opaque `VerificationFailed`.
"""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from django.conf import settings

from oauthapp.models import UID_MAX_LENGTH
from oauthapp.tokens import Identity

HTTP_TIMEOUT_SECONDS = 5
JWKS_CACHE_SECONDS = 300


class VerificationFailed(Exception):
    """The ID token is not acceptable; the reason is for logs only."""


class ProviderInitError(Exception):
    """The identity provider could not be set up (discovery failed)."""


class Verifier(Protocol):
    def verify(self, id_token: str) -> Identity: ...


def _email(claims: dict[str, Any]) -> str:
    # Only an email the provider says it verified may match share invites (docs/protocol/oauth.md §3.3 [SECURITY]):
    # without `email_verified: true` anyone could claim someone else's address at a provider that does not check.
    verified = claims.get("email_verified")
    if not (verified is True or verified == "true"):
        return ""
    email = claims.get("email")
    return email.strip() if isinstance(email, str) else ""


def _first_str(claims: dict[str, Any], *names: str) -> str:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _jwk_client(url: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=JWKS_CACHE_SECONDS, timeout=HTTP_TIMEOUT_SECONDS)


def _signing_key(client: jwt.PyJWKClient, token: str) -> Any:
    try:
        return client.get_signing_key_from_jwt(token).key
    except (jwt.PyJWKClientError, jwt.PyJWTError, ValueError) as exc:
        raise VerificationFailed(f"signing key: {exc.__class__.__name__}") from None


class TokenMissingSubject(VerificationFailed):
    """Verified, but without a subject."""


def _decode(client: jwt.PyJWKClient, id_token: str, **checks: Any) -> dict[str, Any]:
    """Signature with the provider's key for the token's `kid`, then pyjwt's claim checks; VerificationFailed."""
    key = _signing_key(client, id_token)
    try:
        return dict(jwt.decode(id_token, key, **checks))
    except jwt.PyJWTError as exc:
        raise VerificationFailed(exc.__class__.__name__) from None


def _identity(claims: dict[str, Any], *name_claims: str) -> Identity:
    uid = _first_str(claims, "sub")
    if not uid:
        raise TokenMissingSubject("no sub")
    if len(uid) > UID_MAX_LENGTH:  # it becomes a stored owner id: refused rather than cut or left to the database
        raise VerificationFailed("subject too long")
    email = _email(claims)
    return Identity(uid=uid, email=email, name=_first_str(claims, *name_claims) or email or uid)


@dataclass
class OidcVerifier:
    issuer: str
    client_id: str
    jwks_uri: str
    algorithms: list[str]

    @classmethod
    def discover(cls, issuer: str, client_id: str) -> OidcVerifier:
        """Fetch `<issuer>/.well-known/openid-configuration`; raises ProviderInitError."""
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310 - https/http URL
                document = json.loads(response.read())
            jwks_uri = document["jwks_uri"]
        except Exception as exc:  # network, HTTP, JSON or a missing key: all mean "cannot start"
            raise ProviderInitError(f"oidc provider init: {exc.__class__.__name__}: {exc}") from None
        algorithms = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        # Never accept unsigned or symmetric tokens, whatever a provider advertises.
        algorithms = [a for a in algorithms if isinstance(a, str) and a not in ("none",) and not a.startswith("HS")]
        return cls(issuer=issuer, client_id=client_id, jwks_uri=jwks_uri, algorithms=algorithms or ["RS256"])

    def __post_init__(self) -> None:
        self._jwks = _jwk_client(self.jwks_uri)

    def verify(self, id_token: str) -> Identity:
        claims = _decode(
            self._jwks,
            id_token,
            algorithms=self.algorithms,
            audience=self.client_id,
            issuer=self.issuer,
            options={"require": ["exp", "iss", "aud"]},
        )
        return _identity(claims, "name", "preferred_username")


@dataclass
class FirebaseVerifier:
    project_id: str
    jwks_url: str

    def __post_init__(self) -> None:
        self._jwks = _jwk_client(self.jwks_url)

    def verify(self, id_token: str) -> Identity:
        claims = _decode(
            self._jwks,
            id_token,
            algorithms=["RS256"],
            audience=self.project_id,
            issuer=f"https://securetoken.google.com/{self.project_id}",
            options={"require": ["exp", "iat", "iss", "aud"]},
        )
        auth_time = claims.get("auth_time")
        if not isinstance(auth_time, int | float) or auth_time > time.time():
            raise VerificationFailed("auth_time")
        return _identity(claims, "name", "display_name")


_verifiers: dict[tuple[str, ...], Verifier] = {}


def get_verifier() -> Verifier | None:
    """The verifier for the configured AUTH_MODE (None in demo mode), built once per configuration.

    Raises ProviderInitError when OIDC discovery fails.
    """
    config = settings.GATEWAY
    if config.auth_mode == "firebase":
        key: tuple[str, ...] = ("firebase", config.firebase_project_id, settings.GATEWAY_FIREBASE_JWKS_URL)
        if key not in _verifiers:
            _verifiers[key] = FirebaseVerifier(config.firebase_project_id, settings.GATEWAY_FIREBASE_JWKS_URL)
        return _verifiers[key]
    if config.auth_mode == "oidc":
        key = ("oidc", config.oidc_issuer_url, config.oidc_client_id)
        if key not in _verifiers:
            _verifiers[key] = OidcVerifier.discover(config.oidc_issuer_url, config.oidc_client_id)
        return _verifiers[key]
    return None


def init_verifier() -> None:
    """Start-up step 5 (docs/protocol/config.md §1): build the verifier now so that a bad provider stops the process."""
    mode = settings.GATEWAY.auth_mode
    try:
        get_verifier()
    except ProviderInitError as exc:
        raise ProviderInitError(f"{mode} verifier init: {exc}") from None


def startup_check() -> None:
    """The start-up hook of settings.GATEWAY_STARTUP_CHECKS: a provider that cannot be set up stops the process."""
    from gateway_site.boot import StartupFailed

    try:
        init_verifier()
    except ProviderInitError as exc:
        raise StartupFailed(str(exc)) from None
