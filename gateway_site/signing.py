"""The Ed25519 signing key and stateless access-token verification (docs/protocol/oauth.md §8).

The key is derived from JWT_SIGNING_KEY exactly as the upstream gateway derives it, so tokens survive a switch-over
between the two when the key, PUBLIC_BASE_URL and JWT_AUDIENCE are unchanged. Issuing tokens is the OAuth app's
(oauthapp.tokens); verifying them, and operator tokens, is the gateway's.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import threading
import time
from collections.abc import Callable
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

    Returns the claims (a copy the caller may change); raises InvalidToken. Stateless: no database or shared cache.
    A token that passed is remembered in this process by a digest of the token and of what it was checked against
    (key id, audience, issuer) until its exp, so a client that POSTs many frames with one token pays for one
    signature check, not one per request; a change of key, audience or issuer misses the cache.
    """
    config = settings.GATEWAY
    key = current_key()
    digest = hashlib.sha256(
        "\x00".join((key.kid, config.jwt_audience, config.public_base_url, token)).encode()
    ).digest()
    cached = _VERIFIED.get(digest)
    if cached is not None:
        return dict(cached)
    try:
        claims = jwt.decode(
            token,
            key.public,
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
    _VERIFIED.put(digest, claims)
    return dict(claims)


class VerifiedTokens:
    """Claims of tokens that passed verification, by digest, each until its exp (a bounded, per-process map).

    A hit is only served while `now < exp` (PyJWT's zero-leeway rule); a token with a future nbf is never stored, so
    the not-before check always runs. At the bound, expired entries go first, then the oldest.
    """

    def __init__(self, limit: int = 4096, clock: Callable[[], float] = time.time) -> None:
        self.limit, self.clock = limit, clock
        self._entries: dict[bytes, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, digest: bytes) -> dict[str, Any] | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if self.clock() < entry[0]:
            return entry[1]
        with self._lock:
            self._entries.pop(digest, None)
        return None

    def put(self, digest: bytes, claims: dict[str, Any]) -> None:
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            return
        now = self.clock()
        if isinstance(nbf, int | float) and not isinstance(nbf, bool) and nbf > now:
            return
        with self._lock:
            if len(self._entries) >= self.limit:
                for stale in [d for d, (until, _) in self._entries.items() if until <= now]:
                    del self._entries[stale]
                while len(self._entries) >= self.limit:
                    del self._entries[next(iter(self._entries))]
            self._entries[digest] = (float(exp), dict(claims))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_VERIFIED = VerifiedTokens()
