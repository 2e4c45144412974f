"""Operator authentication: short-lived tokens that only a holder of JWT_SIGNING_KEY can mint.

Management commands that change server state reach a running memory-only gateway over HTTP with such a token
(docs/architecture.md, "Operator commands"). It is an EdDSA JWT with its own audience, so no user token can stand in for
it and it cannot stand in for a user token; each token is single-use (its `jti` is remembered until it expires).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import jwt
from django.conf import settings

from gateway_site.errors import Unauthorized
from gateway_site.kvstore import blocking, kv_store
from gateway_site.signing import current_key

OPERATOR_AUDIENCE = "commands-gateway-operator"
OPERATOR_TTL_SECONDS = 60


def mint_operator_token(*, now: int | None = None, issuer: str = "") -> str:
    """A fresh operator token; `issuer` is the server's own (its discovery document's), default this process's."""
    issued = int(time.time()) if now is None else now
    key = current_key()
    claims = {
        "iss": issuer or settings.GATEWAY.public_base_url,
        "aud": OPERATOR_AUDIENCE,
        "sub": "operator",
        "iat": issued,
        "exp": issued + OPERATOR_TTL_SECONDS,
        "jti": secrets.token_hex(16),
    }
    return jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid, "typ": "JWT"})


def verify_operator_token(header: str | None) -> dict[str, Any]:
    """Raises Unauthorized unless the Authorization header carries a fresh, unused operator token (sync code: a
    worker thread, not the event loop's)."""
    from gateway_site.auth import bearer_token

    token = bearer_token(header)
    if not token:
        raise Unauthorized("missing operator token")
    try:
        claims = jwt.decode(
            token,
            current_key().public,
            algorithms=["EdDSA"],
            audience=OPERATOR_AUDIENCE,
            issuer=settings.GATEWAY.public_base_url,
            options={"require": ["exp", "iat", "jti", "sub"]},
        )
    except jwt.PyJWTError:
        raise Unauthorized("invalid operator token") from None
    if claims["sub"] != "operator" or claims["exp"] - claims["iat"] > OPERATOR_TTL_SECONDS:
        raise Unauthorized("invalid operator token")
    # Remembered by every process sharing the store, so a token is single-use across all of them.
    used = kv_store("operator-token-ids", ttl=OPERATOR_TTL_SECONDS * 2, max_entries=10_000)
    if not blocking(used).add(str(claims["jti"])[:64]):
        raise Unauthorized("operator token already used")
    return claims
