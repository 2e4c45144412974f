"""Webhook signature verification, the route field `verify` (docs/protocol/webhooks.md §1).

Three parts: the field's validation and rendering (the secret is write-only), the secret's encryption at rest, and the
check ingress runs on each webhook. The secret is needed in the clear to compute HMACs, so it is stored sealed with
AES-GCM under a key derived from JWT_SIGNING_KEY; the route snapshot ingress caches (shared through Redis in the
scale-out mode) carries only the sealed form, which is opened in the process that checks the webhook.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

PROVIDERS = ("github", "stripe", "slack", "hmac_sha256")
TIMED = frozenset({"stripe", "slack"})  # the providers whose signatures carry a timestamp
SECRET_LENGTH = (8, 512)
TOLERANCE = (1, 3600, 300)
FIELDS = frozenset({"provider", "secret", "tolerance_seconds", "header"})
# An HTTP field name (RFC 9110 token), bounded: the header a `hmac_sha256` sender signs into.
HEADER_NAME_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")
MAX_HEADER_VALUE = 2048  # a signature header longer than this is refused unread (Stripe sends well under 1 KiB)
HEX64_RE = re.compile(r"[0-9a-f]{64}")
TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")

# -- the route field -----------------------------------------------------------------------------------------------


class VerifyFieldError(ValueError):
    """The `verify` field is invalid; the message is the API error's (400 `invalid_request`)."""


@dataclass(frozen=True)
class VerifySettings:
    """A validated `verify` field, secret still in the clear (it is sealed before it is stored)."""

    provider: str
    secret: str
    tolerance_seconds: int
    header: str


def parse_field(value: object) -> VerifySettings | None:
    """The `verify` value of a create or PUT body: None for `null`, else the validated settings."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise VerifyFieldError("verify must be an object or null")
    unknown = sorted(set(value) - FIELDS)
    if unknown:
        raise VerifyFieldError(f"verify has an unknown field: {unknown[0][:64]}")
    provider = value.get("provider")
    if provider not in PROVIDERS:
        raise VerifyFieldError(f"verify.provider must be one of {', '.join(PROVIDERS)}")
    secret = value.get("secret")
    low, high = SECRET_LENGTH
    if not isinstance(secret, str) or not low <= len(secret) <= high:
        raise VerifyFieldError(f"verify.secret is required and must be {low}-{high} characters long")
    tolerance = value.get("tolerance_seconds", TOLERANCE[2])
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or not TOLERANCE[0] <= tolerance <= TOLERANCE[1]:
        raise VerifyFieldError(f"verify.tolerance_seconds must be an integer between {TOLERANCE[0]} and {TOLERANCE[1]}")
    header = value.get("header")
    if provider == "hmac_sha256":
        if header is None:
            raise VerifyFieldError("verify.header is required for the hmac_sha256 provider")
        if not isinstance(header, str) or not HEADER_NAME_RE.fullmatch(header):
            raise VerifyFieldError("verify.header must be a valid HTTP header name (at most 100 characters)")
    elif header is not None:
        raise VerifyFieldError("verify.header is only used by the hmac_sha256 provider")
    return VerifySettings(str(provider), secret, tolerance, (header or "").lower())


def render(provider: str, header: str, tolerance_seconds: int) -> dict[str, Any] | None:
    """The field as route responses show it: never the secret."""
    if not provider:
        return None
    shown: dict[str, Any] = {"provider": provider, "configured": True}
    if provider == "hmac_sha256":
        shown["header"] = header
    if provider in TIMED:
        shown["tolerance_seconds"] = tolerance_seconds
    return shown


# -- the secret at rest ----------------------------------------------------------------------------------------------

SEAL_VERSION = "v1"  # the prefix names the key, so a later key can be added beside it
HKDF_SALT = b"encrypted-relay-gateway"
HKDF_INFO = b"webhook-verify-secret-v1"


@functools.lru_cache(maxsize=4)
def _key(signing_key: str) -> bytes:
    derivation = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=HKDF_INFO)
    return derivation.derive(signing_key.strip().encode())


def _aad(route_id: str, purpose: str) -> bytes:
    """A sealed value is bound to its route and its purpose: copied into another route's row, or read as something
    else (a buffered webhook as a secret), it does not open."""
    return f"{purpose}:".encode() + route_id.encode()


def seal(secret: str, route_id: str, purpose: str = "route-verify") -> str:
    """`v1:` + base64(nonce ‖ AES-256-GCM ciphertext and tag). Also seals buffered webhooks (tunnels.buffering)."""
    nonce = os.urandom(12)
    key = AESGCM(_key(settings.GATEWAY.jwt_signing_key))
    sealed = key.encrypt(nonce, secret.encode(), _aad(route_id, purpose))
    return f"{SEAL_VERSION}:{base64.b64encode(nonce + sealed).decode()}"


def unseal(sealed: str, route_id: str, purpose: str = "route-verify") -> str | None:
    """The secret, or None when the value is not one this key sealed for this route and purpose."""
    version, _, encoded = sealed.partition(":")
    if version != SEAL_VERSION:
        return None
    try:
        raw = base64.b64decode(encoded, validate=True)
        key = AESGCM(_key(settings.GATEWAY.jwt_signing_key))
        opened = key.decrypt(raw[:12], raw[12:], _aad(route_id, purpose))
    except (binascii.Error, ValueError, InvalidTag):
        return None
    return opened.decode()


# -- the check on each webhook ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    """Whether a webhook passed; `reason` is a short fixed phrase for logs and the inspector (no secret, no
    signature)."""

    ok: bool
    reason: str


PASSED = VerifyResult(True, "verified")


def _fail(reason: str) -> VerifyResult:
    return VerifyResult(False, reason)


def _mac(secret: str, *parts: bytes) -> str:
    digest = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def _matches(expected: str, presented: str) -> bool:
    """Constant time. Providers send lowercase hex; uppercase is accepted as the same digest."""
    presented = presented.lower()
    return bool(HEX64_RE.fullmatch(presented)) and hmac.compare_digest(expected, presented)


def _untimely(stamp: str, tolerance: int, now: float) -> VerifyResult | None:
    """Why the timestamp (whole seconds since the epoch) is refused, or None: it may be old or ahead by `tolerance`."""
    if not TIMESTAMP_RE.fullmatch(stamp):
        return _fail("malformed timestamp")
    return None if abs(now - int(stamp)) <= tolerance else _fail("timestamp outside tolerance")


class _Headers:
    """The request's headers by lower-case name; a name sent twice, or a value over the bound, counts as malformed."""

    def __init__(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(bytes(name).decode("latin-1").lower(), []).append(bytes(value).decode("latin-1"))

    def one(self, name: str) -> str | None:
        """The single value, or None when absent, repeated or oversized."""
        values = self._values.get(name, [])
        if len(values) != 1 or len(values[0]) > MAX_HEADER_VALUE:
            return None
        return values[0].strip()


def _stripe(secret: str, tolerance: int, headers: _Headers, body: bytes, now: float) -> VerifyResult:
    value = headers.one("stripe-signature")
    if value is None:
        return _fail("missing or malformed Stripe-Signature")
    stamps, signatures = [], []
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if key == "t" and sep:
            stamps.append(val)
        elif key == "v1" and sep:
            signatures.append(val)
    if len(stamps) != 1 or not signatures:
        return _fail("missing or malformed Stripe-Signature")
    refused = _untimely(stamps[0], tolerance, now)
    if refused is not None:
        return refused
    expected = _mac(secret, stamps[0].encode(), b".", body)
    # Every candidate is compared, so the time taken does not tell which one matched.
    matched = [_matches(expected, candidate) for candidate in signatures]
    return PASSED if any(matched) else _fail("signature mismatch")


def _slack(secret: str, tolerance: int, headers: _Headers, body: bytes, now: float) -> VerifyResult:
    stamp, signature = headers.one("x-slack-request-timestamp"), headers.one("x-slack-signature")
    if stamp is None or signature is None or not signature.startswith("v0="):
        return _fail("missing or malformed Slack signature headers")
    refused = _untimely(stamp, tolerance, now)
    if refused is not None:
        return refused
    expected = _mac(secret, b"v0:", stamp.encode(), b":", body)
    return PASSED if _matches(expected, signature[3:]) else _fail("signature mismatch")


def _plain(secret: str, name: str, headers: _Headers, body: bytes, *, prefix_required: bool) -> VerifyResult:
    value = headers.one(name)
    if value is None:
        return _fail("missing or malformed signature header")
    if value[:7].lower() == "sha256=":
        value = value[7:]
    elif prefix_required:
        return _fail("missing or malformed signature header")
    return PASSED if _matches(_mac(secret, body), value) else _fail("signature mismatch")


def check_secret(
    provider: str,
    secret: str,
    *,
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
    tolerance_seconds: int = TOLERANCE[2],
    header: str = "",
    now: float | None = None,
) -> VerifyResult:
    """Check one webhook against the provider's scheme; `headers` as in an ASGI scope, `body` the raw bytes."""
    moment = time.time() if now is None else now
    indexed = _Headers(headers)
    if provider == "github":
        return _plain(secret, "x-hub-signature-256", indexed, body, prefix_required=True)
    if provider == "hmac_sha256":
        return _plain(secret, header, indexed, body, prefix_required=False)
    if provider == "stripe":
        return _stripe(secret, tolerance_seconds, indexed, body, moment)
    if provider == "slack":
        return _slack(secret, tolerance_seconds, indexed, body, moment)
    return _fail("unknown provider")


def snapshot_part(provider: str, sealed: str, header: str, tolerance_seconds: int) -> dict[str, Any] | None:
    """What the route snapshot carries of `verify`: the sealed secret only (docs/protocol/webhooks.md §1)."""
    if not provider:
        return None
    return {"provider": provider, "sealed": sealed, "header": header, "tolerance_seconds": tolerance_seconds}


def check(
    route_id: str, part: dict[str, Any], headers: Iterable[tuple[bytes, bytes]], body: bytes, now: float | None = None
) -> VerifyResult:
    """Ingress's check of a webhook for a route whose snapshot has a `verify` part (`snapshot_part`)."""
    secret = unseal(str(part.get("sealed") or ""), route_id)
    if secret is None:
        return _fail("secret cannot be opened")  # e.g. JWT_SIGNING_KEY changed since the secret was stored
    return check_secret(
        str(part["provider"]),
        secret,
        headers=headers,
        body=body,
        tolerance_seconds=int(part.get("tolerance_seconds") or TOLERANCE[2]),
        header=str(part.get("header") or ""),
        now=now,
    )
