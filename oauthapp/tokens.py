"""The EdDSA access token (docs/protocol/oauth.md §8): JWKS and issuing; the key and verification are in
gateway_site.signing."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings

from gateway_site.signing import current_key


def jwks() -> dict[str, list[dict[str, str]]]:
    return {"keys": [current_key().jwk()]}


@dataclass(frozen=True)
class Identity:
    """Who a token speaks for (docs/protocol/oauth.md §10)."""

    uid: str
    email: str = ""
    name: str = ""


def access_token_ttl() -> int:
    """Demo-mode tokens use DEMO_TOKEN_TTL_SECONDS (docs/protocol/decisions.md O8), others ACCESS_TOKEN_TTL_SECONDS."""
    config = settings.GATEWAY
    return config.demo_token_ttl_seconds if config.auth_mode == "demo" else config.access_token_ttl_seconds


def issue_access_token(identity: Identity, scope: str, *, now: int | None = None) -> tuple[str, int]:
    """Sign an access token; returns `(jwt, expires_in)`. Empty email, name and scope claims are omitted."""
    config = settings.GATEWAY
    issued = int(time.time()) if now is None else now
    ttl = access_token_ttl()
    claims: dict[str, Any] = {}
    if identity.email:
        claims["email"] = identity.email
    if identity.name:
        claims["name"] = identity.name
    if scope:
        claims["scope"] = scope
    claims.update(
        {
            "auth_mode": config.auth_mode,
            "iss": config.public_base_url,
            "sub": identity.uid,
            "aud": [config.jwt_audience],
            "exp": issued + ttl,
            "nbf": issued,
            "iat": issued,
        }
    )
    key = current_key()
    token = jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid, "typ": "JWT"})
    return token, ttl
