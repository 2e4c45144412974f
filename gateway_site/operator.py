"""Operator authentication: tokens that only a holder of JWT_SIGNING_KEY can mint, operator sessions, the audit log.

Three credentials, each an EdDSA JWT with an audience of its own, so that none can stand in for another or for a user
token (and no user token for any of them):

- the **command token** (60 s, single use): management commands that change server state reach a running
  memory-only gateway over HTTP with it (docs/architecture.md, "Operator commands");
- the **sign-in link token** (10 minutes, single use): `manage.py operator_login` prints it inside a link to the
  operator console; exchanging it opens an operator session;
- the **session cookie** (8 hours): names a server-side session record in the key/value store, so signing out and
  expiry are real, and so is single use of the tokens above across every process sharing the store.

Every operator action is written as one line on the `gateway.audit` logger (`audit`): who (a hash of the session id,
never a token or an email), what, on which target, when. See docs/operations.md.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings

from gateway_site.errors import Unauthorized
from gateway_site.kvstore import blocking, kv_store
from gateway_site.signing import current_key
from gateway_site.timefmt import rfc3339

OPERATOR_AUDIENCE = "commands-gateway-operator"
OPERATOR_TTL_SECONDS = 60
LOGIN_AUDIENCE = "commands-gateway-operator-login"
LOGIN_TTL_SECONDS = 600
SESSION_AUDIENCE = "commands-gateway-operator-session"
SESSION_TTL_SECONDS = 8 * 3600
SESSION_COOKIE = "gw_operator"
SESSION_COOKIE_PATH = "/console/operator"
MAX_SESSIONS = 10_000

audit_logger = logging.getLogger("gateway.audit")


def _sign(audience: str, ttl: int, *, issuer: str = "", now: int | None = None, jti: str = "") -> str:
    issued = int(time.time()) if now is None else now
    key = current_key()
    claims = {
        "iss": issuer or settings.GATEWAY.public_base_url,
        "aud": audience,
        "sub": "operator",
        "iat": issued,
        "exp": issued + ttl,
        "jti": jti or secrets.token_hex(16),
    }
    return jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid, "typ": "JWT"})


def _verify(token: str, audience: str, ttl: int, error: str) -> dict[str, Any]:
    """The claims of a valid token for `audience` issued by this server, no longer-lived than `ttl`."""
    try:
        claims = jwt.decode(
            token,
            current_key().public,
            algorithms=["EdDSA"],
            audience=audience,
            issuer=settings.GATEWAY.public_base_url,
            leeway=0,
            options={"require": ["exp", "iat", "jti", "sub"]},
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        raise Unauthorized(error) from None
    if claims["sub"] != "operator" or claims["exp"] - claims["iat"] > ttl or not isinstance(claims["jti"], str):
        raise Unauthorized(error)
    return dict(claims)


def _claim_once(store_name: str, ttl: int, jti: str) -> bool:
    """Remember `jti` for `ttl` seconds in the store every process shares; False when it was seen before."""
    used = kv_store(store_name, ttl=ttl, max_entries=MAX_SESSIONS)
    return bool(blocking(used).add(jti[:64]))


# -- the command token ---------------------------------------------------------------------------------------------


def mint_operator_token(*, now: int | None = None, issuer: str = "") -> str:
    """A fresh command token; `issuer` is the server's own (its discovery document's), default this process's."""
    return _sign(OPERATOR_AUDIENCE, OPERATOR_TTL_SECONDS, issuer=issuer, now=now)


def verify_operator_token(header: str | None) -> dict[str, Any]:
    """Raises Unauthorized unless the Authorization header carries a fresh, unused command token (sync code: a
    worker thread, not the event loop's)."""
    from gateway_site.auth import bearer_token

    token = bearer_token(header)
    if not token:
        raise Unauthorized("missing operator token")
    claims = _verify(token, OPERATOR_AUDIENCE, OPERATOR_TTL_SECONDS, "invalid operator token")
    if not _claim_once("operator-token-ids", OPERATOR_TTL_SECONDS * 2, claims["jti"]):
        raise Unauthorized("operator token already used")
    return claims


# -- the sign-in link ----------------------------------------------------------------------------------------------


def mint_login_token(*, now: int | None = None, issuer: str = "") -> str:
    """The token of a sign-in link: 10 minutes, single use."""
    return _sign(LOGIN_AUDIENCE, LOGIN_TTL_SECONDS, issuer=issuer, now=now)


def login_link(base_url: str, token: str) -> str:
    """The link `operator_login` prints. The token rides in the fragment, which browsers never send to a server, so it
    lands in no access log and no Referer."""
    return f"{base_url.rstrip('/')}{SESSION_COOKIE_PATH}/login#{token}"


def redeem_login_token(token: str) -> dict[str, Any]:
    """The claims of a valid, unused sign-in token, which is used up by this call; Unauthorized otherwise."""
    if not token or len(token) > 4096:
        raise Unauthorized("invalid sign-in link")
    claims = _verify(token, LOGIN_AUDIENCE, LOGIN_TTL_SECONDS, "invalid or expired sign-in link")
    if not _claim_once("operator-login-ids", LOGIN_TTL_SECONDS * 2, claims["jti"]):
        raise Unauthorized("sign-in link already used")
    return claims


# -- sessions ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorSession:
    """An open operator session: who (`operator`, a hash of the session id; `uid` for a session opened through
    OPERATOR_EMAILS), how it was opened (`via`: link, email, command), its CSRF token and its expiry."""

    operator: str
    via: str
    uid: str
    csrf: str
    expires_at: int

    def view(self) -> dict[str, Any]:
        return {
            "operator": self.operator,
            "via": self.via,
            "csrf_token": self.csrf,
            "expires_at": rfc3339(self.expires_at),
        }


def _sessions() -> Any:
    return kv_store("operator-sessions", ttl=SESSION_TTL_SECONDS, max_entries=MAX_SESSIONS)


def _session_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def operator_label(session_id: str) -> str:
    """How logs name an operator: `op-` and 12 hex digits of a hash of the session id (the id itself never)."""
    return "op-" + _session_key(session_id)[:12]


def open_session(*, via: str, uid: str = "", now: int | None = None) -> tuple[str, OperatorSession]:
    """A new session; returns the cookie value (a signed token naming the session) and the session."""
    issued = int(time.time()) if now is None else now
    session_id = secrets.token_urlsafe(32)
    session = OperatorSession(
        operator=operator_label(session_id),
        via=via,
        uid=uid,
        csrf=secrets.token_urlsafe(32),
        expires_at=issued + SESSION_TTL_SECONDS,
    )
    record = {"operator": session.operator, "via": via, "uid": uid, "csrf": session.csrf, "exp": session.expires_at}
    blocking(_sessions()).set(_session_key(session_id), record)
    cookie = _sign(SESSION_AUDIENCE, SESSION_TTL_SECONDS, now=issued, jti=session_id)
    audit_logger.info(
        "operator session opened", extra={"fields": {"operator": session.operator, "via": via, "uid": uid or "-"}}
    )
    return cookie, session


def read_session(cookie: str | None) -> tuple[str, OperatorSession] | None:
    """(session id, session) for a session cookie that is valid and whose record still exists; None otherwise."""
    if not cookie or len(cookie) > 4096:
        return None
    try:
        claims = _verify(cookie, SESSION_AUDIENCE, SESSION_TTL_SECONDS, "invalid session")
    except Unauthorized:
        return None
    session_id = claims["jti"]
    record = blocking(_sessions()).get(_session_key(session_id))
    if not isinstance(record, dict) or int(record.get("exp", 0)) < time.time():
        return None
    return session_id, OperatorSession(
        operator=str(record["operator"]),
        via=str(record.get("via", "")),
        uid=str(record.get("uid", "")),
        csrf=str(record["csrf"]),
        expires_at=int(record["exp"]),
    )


def close_session(session_id: str) -> None:
    blocking(_sessions()).delete(_session_key(session_id))


# -- the audit log -------------------------------------------------------------------------------------------------


def audit(operator: str, action: str, target: str, **details: Any) -> None:
    """One line per operator action on `gateway.audit`: operator, action, target, time (and small details such as
    counts). Callers pass ids only: never a token, an email or a body."""
    fields = {"operator": operator, "action": action, "target": target, "time": rfc3339(time.time()), **details}
    audit_logger.info("operator action", extra={"fields": fields})
