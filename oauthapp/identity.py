"""Who is signing in (docs/protocol/oauth.md §3.3, §10): demo identities, and upstream ID tokens in firebase/oidc
modes."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from django.conf import settings

from gateway_site.errors import BadRequest, Unauthorized
from oauthapp.models import UID_MAX_LENGTH
from oauthapp.tokens import Identity
from oauthapp.verifiers import ProviderInitError, TokenMissingSubject, VerificationFailed, get_verifier

logger = logging.getLogger("gateway.oauth")


@dataclass(frozen=True)
class SignInInput:
    """The identity-bearing parts of an authorize request."""

    method: str
    demo_email: str = ""
    demo_name: str = ""
    demo_uid: str = ""
    id_token: str = ""


def demo_uid_for_email(email: str, signing_key: str) -> str:
    """`demo-` + the first 16 hex of HMAC-SHA256(key, lower(trim(email)))."""
    digest = hmac.new(signing_key.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()
    return "demo-" + digest[:16]


def _demo_identity(data: SignInInput) -> Identity | None:
    if data.method == "GET" and not (data.demo_uid or data.demo_email or data.demo_name):
        return None  # show the sign-in page
    if data.demo_email:
        uid = demo_uid_for_email(data.demo_email, settings.GATEWAY.jwt_signing_key)
        email = data.demo_email
    elif data.demo_uid:
        if len(data.demo_uid) > UID_MAX_LENGTH:
            raise BadRequest(
                "invalid_request", error_description=f"demo_uid must be at most {UID_MAX_LENGTH} characters"
            )
        uid, email = data.demo_uid, ""
    else:
        uid, email = "demo-" + secrets.token_hex(5), ""
    return Identity(uid=uid, email=email, name=data.demo_name or email or uid)


def _upstream_identity(data: SignInInput) -> Identity | None:
    if not data.id_token:
        if data.method == "GET":
            return None  # show the sign-in page
        raise Unauthorized("id token is required")
    try:
        verifier = get_verifier()
    except ProviderInitError:
        verifier = None
    if verifier is None:
        raise Unauthorized("identity verifier is not configured")
    try:
        identity = verifier.verify(data.id_token)
    except TokenMissingSubject:
        raise Unauthorized("token missing subject") from None
    except VerificationFailed as exc:
        logger.info("id token rejected", extra={"fields": {"reason": str(exc)}})
        raise Unauthorized("id token verification failed") from None
    if len(identity.uid) > UID_MAX_LENGTH:
        raise Unauthorized("id token verification failed")
    return identity


def resolve_identity(data: SignInInput) -> Identity | None:
    """The signed-in identity, or None when a sign-in page must be shown instead. Raises the §3.3 errors."""
    mode = settings.GATEWAY.auth_mode
    if mode == "demo":
        return _demo_identity(data)
    if mode in ("firebase", "oidc"):
        return _upstream_identity(data)
    raise Unauthorized("unsupported auth mode")
