"""The Ed25519 signing key and stateless access-token verification (docs/protocol/oauth.md §8).

The key is derived from JWT_SIGNING_KEY exactly as the upstream gateway derives it, so tokens survive a switch-over
between the two when the key, PUBLIC_BASE_URL and JWT_AUDIENCE are unchanged. Issuing tokens is the OAuth app's
(oauthapp.tokens); verifying them, and operator tokens, is the gateway's.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

HKDF_SALT = b"oss-commands-gateway"
HKDF_INFO = b"ed25519-signing-key-v1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    public: Ed25519PublicKey
    public_raw: bytes
    kid: str

    def jwk(self) -> dict[str, str]:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url(self.public_raw),
            "use": "sig",
            "alg": "EdDSA",
            "kid": self.kid,
        }


@functools.lru_cache(maxsize=8)
def derive_signing_key(secret: str) -> SigningKey:
    """HKDF-SHA256(salt, IKM=trimmed secret, info) -> 32-byte Ed25519 seed; kid = b64url(SHA-256(pub)[:8])."""
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=HKDF_INFO).derive(secret.strip().encode())
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey(private, public, raw, b64url(hashlib.sha256(raw).digest()[:8]))


def current_key() -> SigningKey:
    return derive_signing_key(settings.GATEWAY.jwt_signing_key)


class InvalidToken(Exception):
    """The token failed validation; the reason is for logs only, never for the client."""


def verify_access_token(token: str) -> dict[str, Any]:
    """Validate signature (EdDSA only), iss, aud, exp, nbf and a non-empty sub, with zero leeway (docs/protocol/oauth.md
    §8.3).

    Returns the claims; raises InvalidToken. Stateless: no database or cache access.
    """
    config = settings.GATEWAY
    try:
        claims = jwt.decode(
            token,
            current_key().public,
            algorithms=["EdDSA"],
            audience=config.jwt_audience,
            issuer=config.public_base_url,
            leeway=0,
            # The upstream would accept a token without exp; it never issues one, so we require it.
            options={"require": ["exp", "iss", "sub", "aud"], "verify_iat": False},
        )
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidToken(exc.__class__.__name__) from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.strip():
        raise InvalidToken("empty sub")
    return claims
