"""PKCE S256 (docs/protocol/oauth.md §3.8): the authorize-time challenge checks and the token-time verifier checks."""

from __future__ import annotations

import hashlib
import hmac
import re

from gateway_site.errors import BadRequest
from gateway_site.signing import b64url

VERIFIER_CHARS = re.compile(r"^[A-Za-z0-9\-._~]+$")


def invalid_request(description: str) -> BadRequest:
    return BadRequest("invalid_request", error_description=description)


def invalid_grant(description: str | None = None) -> BadRequest:
    if description is None:
        return BadRequest("invalid_grant")
    return BadRequest("invalid_grant", error_description=description)


def check_challenge(challenge: str, method: str) -> None:
    """Authorize steps 6-8; raises BadRequest(invalid_request)."""
    if not challenge:
        raise invalid_request("code_challenge is required (PKCE)")
    if not 43 <= len(challenge) <= 128:
        raise invalid_request("code_challenge must be 43-128 characters (RFC 7636)")
    if not method:
        raise invalid_request("code_challenge_method is required; use S256")
    if method.lower() == "plain":
        raise invalid_request("code_challenge_method 'plain' is not supported; use S256")
    if method.lower() != "s256":
        raise invalid_request(f"unsupported code_challenge_method: {method}")


def s256(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def check_verifier(challenge: str, verifier: str) -> None:
    """Token-time checks, in order; raises BadRequest(invalid_grant) with the matching description."""
    if not challenge:
        raise invalid_grant("code_challenge is required")
    if not verifier:
        raise invalid_grant("code_verifier is required")
    if not 43 <= len(verifier) <= 128:
        raise invalid_grant("code_verifier must be 43-128 characters (RFC 7636)")
    if not VERIFIER_CHARS.fullmatch(verifier):
        raise invalid_grant("code_verifier contains invalid characters (RFC 7636)")
    if not hmac.compare_digest(s256(verifier), challenge):
        raise invalid_grant("pkce mismatch")
