"""The authorization server's rules (docs/protocol/oauth.md §3-7 with docs/protocol/decisions.md O1-O8).

Authorization codes are django-oauth-toolkit `Grant` rows and refresh tokens DOT `RefreshToken` rows; both are
stored only as SHA-256 digests. Refresh tokens of one sign-in share a `token_family`; a consumed token stays behind
as a revoked row (the tombstone) so that presenting it again revokes the whole family.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from oauth2_provider.models import Application, Grant, RefreshToken, set_token_value

from gateway_site.errors import ApiError, BadRequest, Unauthorized
from oauthapp import pkce
from oauthapp.models import UID_MAX_LENGTH, TokenFamily, User
from oauthapp.redirects import redirect_allowed
from oauthapp.scopes import client_credentials_scope, normalize_scope
from oauthapp.tokens import Identity, issue_access_token

logger = logging.getLogger("gateway.oauth")

OOB_PREFIX = "urn:"
REFRESH_FAILED = "refresh token not found or expired"


def digest(secret: str) -> str:
    """How codes and refresh tokens are stored and looked up: SHA-256 hex (DOT's token checksum)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _now() -> int:
    return int(time.time())


def _datetime(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, tz=UTC)


def default_application() -> Application:
    """The one public client (OAUTH_DEFAULT_CLIENT_ID), kept in step with the configured allowlist."""
    config = settings.GATEWAY
    redirect_uris = " ".join(config.redirect_allowlist)
    app, created = Application.objects.get_or_create(
        client_id=config.oauth_default_client_id,
        defaults={
            "name": config.oauth_client_name,
            "client_type": Application.CLIENT_PUBLIC,
            "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
            "redirect_uris": redirect_uris,
            "skip_authorization": True,
            "hash_client_secret": False,
            "client_secret": "",
        },
    )
    if not created and (app.redirect_uris != redirect_uris or app.name != config.oauth_client_name):
        app.redirect_uris = redirect_uris
        app.name = config.oauth_client_name
        app.save(update_fields=["redirect_uris", "name", "updated"])
    return app


# ---------------------------------------------------------------------------------------------------------------
# /oauth/authorize


@dataclass(frozen=True)
class AuthorizeRequest:
    response_type: str
    client_id: str
    redirect_uri: str
    scope: str
    state: str
    code_challenge: str
    code_challenge_method: str
    response_mode: str


def authorize_validate_client(*, response_type: str, client_id: str, redirect_uri: str) -> None:
    """Steps 1-4 of the processing order (docs/protocol/oauth.md §3.2)."""
    config = settings.GATEWAY
    if (response_type or "code") != "code":
        raise BadRequest("unsupported response_type")
    if (client_id or config.oauth_default_client_id) != config.oauth_default_client_id:
        raise BadRequest("invalid_client", error_description="unknown client_id")
    if not redirect_uri:
        raise BadRequest("redirect_uri is required")
    if not redirect_allowed(redirect_uri, config.redirect_allowlist):
        raise BadRequest("redirect_uri not allowed")


def authorize_validate_pkce(request: AuthorizeRequest) -> None:
    """Steps 6-8. Also run before a sign-in page is shown, so a bad request fails before the user types anything."""
    pkce.check_challenge(request.code_challenge, request.code_challenge_method)


def oauth_sweep() -> int:
    """Delete what can never be used again: expired codes, expired refresh tokens, tombstones past their TTL,
    and families left without a token. Runs on every sign-in, so the in-memory database does not grow without
    bound. Returns the number of rows deleted."""
    now = _datetime(_now())
    ttl = settings.GATEWAY.refresh_token_ttl_seconds
    cutoff = _datetime(_now() - ttl)
    deleted: int = Grant.objects.filter(expires__lt=now).delete()[0]
    deleted += RefreshToken.objects.filter(revoked__isnull=True, created__lte=cutoff).delete()[0]
    deleted += RefreshToken.objects.filter(revoked__isnull=False, revoked__lte=cutoff).delete()[0]
    live_families = RefreshToken.objects.values("token_family")
    deleted += TokenFamily.objects.filter(created__lte=cutoff).exclude(id__in=live_families).delete()[0]
    return deleted


def authorization_code_issue(*, request: AuthorizeRequest, identity: Identity) -> str:
    """Steps 6-11: check PKCE, normalise the scope, store the code (as a digest); returns the code."""
    authorize_validate_pkce(request)
    oauth_sweep()
    code = secrets.token_urlsafe(32)
    scope = normalize_scope(request.scope)
    user = User.objects.for_uid(identity.uid)
    Grant.objects.create(
        user=user,
        code=digest(code),
        application=default_application(),
        expires=_datetime(_now() + settings.GATEWAY.auth_code_ttl_seconds),
        redirect_uri=request.redirect_uri,
        scope=scope,
        code_challenge=request.code_challenge,
        code_challenge_method="S256",
        claims=json.dumps({"uid": identity.uid, "email": identity.email, "name": identity.name}),
    )
    return code


def authorize_json_answer(*, request: AuthorizeRequest, code: str) -> dict[str, Any]:
    """The JSON success body (docs/protocol/oauth.md §3.5); note `challenge_method`, not `code_challenge_method`."""
    return {
        "code": code,
        "state": request.state,
        "redirect_uri": request.redirect_uri,
        "expires_in": settings.GATEWAY.auth_code_ttl_seconds,
        "code_challenge": request.code_challenge,
        "challenge_method": "S256",
        "iss": settings.GATEWAY.public_base_url,  # RFC 9207 (decisions.md H6)
    }


def authorize_redirect_location(*, redirect_uri: str, code: str, state: str) -> str:
    """`redirect_uri` with `code`, `iss` (RFC 9207) and a non-empty `state` set, other parameters kept, keys sorted.
    (An allowlisted `redirect_uri` never has a fragment.)"""
    parts = urlsplit(redirect_uri)
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(key, []).append(value)
    query["code"] = [code]
    query["iss"] = [settings.GATEWAY.public_base_url]
    if state:
        query["state"] = [state]
    encoded = urlencode([(key, value) for key in sorted(query) for value in query[key]])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, encoded, parts.fragment))


def authorize_wants_json(*, request: AuthorizeRequest, accept: str) -> bool:
    return (
        request.redirect_uri.startswith(OOB_PREFIX)
        or request.response_mode.lower() == "json"
        or "application/json" in accept
    )


# ---------------------------------------------------------------------------------------------------------------
# /oauth/token


def _token_response(identity: Identity, scope: str, refresh_token: str | None) -> dict[str, Any]:
    access_token, expires_in = issue_access_token(identity, scope)
    body: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in}
    body["scope"] = scope
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return body


def _new_refresh_token(*, user: User, application: Application, family: TokenFamily) -> tuple[str, RefreshToken]:
    raw = secrets.token_urlsafe(40)
    row = RefreshToken(user=user, application=application, token_family=family.id)
    set_token_value(row, raw)  # stores the checksum only (RFC 9700 token storage)
    row.save()
    return raw, row


def token_exchange_code(*, code: str, client_id: str, redirect_uri: str, code_verifier: str) -> dict[str, Any]:
    """`grant_type=authorization_code` (docs/protocol/oauth.md §4.2). A failed exchange does not burn the code."""
    config = settings.GATEWAY
    if not code:
        raise BadRequest("code is required")
    code_digest = digest(code)
    grant = Grant.objects.select_related("application", "user").filter(code=code_digest).first()
    if grant is None:
        # A code exchanged before: whoever replays it may have stolen it, so the tokens it gave are revoked too.
        replayed = TokenFamily.objects.filter(code_digest=code_digest).values_list("id", flat=True).first()
        if replayed is not None:
            _revoke_family(replayed)
            logger.warning("authorization code replayed: its refresh-token family is revoked")
        raise pkce.invalid_grant()
    if _now() > int(grant.expires.timestamp()):
        raise pkce.invalid_grant()
    if (client_id or config.oauth_default_client_id) != grant.application.client_id:
        raise Unauthorized("invalid_client")
    if not redirect_uri or redirect_uri != grant.redirect_uri:
        raise pkce.invalid_grant()
    pkce.check_verifier(grant.code_challenge, code_verifier)
    claims = json.loads(grant.claims or "{}")
    with transaction.atomic():
        # Single use: whoever deletes the row wins; concurrent exchanges lose here.
        if Grant.objects.filter(pk=grant.pk).delete()[0] != 1:
            raise pkce.invalid_grant()
        family = TokenFamily.objects.create(
            uid=claims.get("uid") or grant.user.uid,
            email=claims.get("email", ""),
            name=claims.get("name", ""),
            scope=grant.scope,
            client_id=grant.application.client_id,
            auth_mode=config.auth_mode,
            code_digest=code_digest,
        )
        refresh, _ = _new_refresh_token(user=grant.user, application=grant.application, family=family)
    identity = Identity(uid=family.uid, email=family.email, name=family.name)
    # An email reaches a family in oidc/firebase mode only when the provider verified it (oauthapp.verifiers).
    User.objects.seen(family.uid, email=family.email, email_verified=family.auth_mode in ("oidc", "firebase"))
    return _token_response(identity, grant.scope, refresh)


def _refresh_failed() -> ApiError:
    # docs/protocol/decisions.md O4: the agent re-runs its login when it finds this text.
    return pkce.invalid_grant(REFRESH_FAILED)


def _revoke_family(family_id: uuid.UUID | None) -> None:
    """Reuse detected: every live token of the family dies, the legitimate holder's newest one included."""
    RefreshToken.objects.filter(token_family=family_id, revoked__isnull=True).delete()


def token_refresh(*, refresh_token: str, client_id: str) -> dict[str, Any]:
    """`grant_type=refresh_token` with rotation and reuse detection (docs/protocol/oauth.md §4.3)."""
    config = settings.GATEWAY
    ttl = config.refresh_token_ttl_seconds
    if not refresh_token:
        raise BadRequest("refresh_token is required")
    checksum = digest(refresh_token)
    rows = list(RefreshToken.objects.select_related("application", "user").filter(token_checksum=checksum))
    live = next((row for row in rows if row.revoked is None), None)
    now = _now()
    if live is not None and now >= int(live.created.timestamp()) + ttl:
        live.delete()
        live = None
    if live is None:
        tombstone = next(
            (row for row in rows if row.revoked is not None and now < int(row.revoked.timestamp()) + ttl), None
        )
        if tombstone is not None:
            _revoke_family(tombstone.token_family)
        raise _refresh_failed()
    family = TokenFamily.objects.filter(pk=live.token_family).first()
    if family is None:
        raise _refresh_failed()
    if family.client_id and family.client_id != (client_id or config.oauth_default_client_id):
        raise Unauthorized("invalid_client")
    with transaction.atomic():
        replacement, replacement_row = _new_refresh_token(user=live.user, application=live.application, family=family)
        consumed = RefreshToken.objects.filter(pk=live.pk, revoked__isnull=True).update(
            revoked=_datetime(now), updated=_datetime(now)
        )
    if consumed != 1:
        # Lost a race for the same token: treat it as reuse.
        replacement_row.delete()
        _revoke_family(family.id)
        raise _refresh_failed()
    identity = Identity(uid=family.uid, email=family.email, name=family.name)
    User.objects.seen(family.uid)
    return _token_response(identity, family.scope, replacement)


def token_client_credentials(*, client_id: str, scope: str) -> dict[str, Any]:
    """Demo only (docs/protocol/oauth.md §4.4): any client id, subject `client:<id>`, no refresh token."""
    config = settings.GATEWAY
    if config.auth_mode != "demo":
        raise BadRequest("unsupported_grant_type")
    client = client_id or config.oauth_default_client_id
    if len(f"client:{client}") > UID_MAX_LENGTH:  # the subject is stored as an owner id (255 characters)
        raise BadRequest("invalid_request", error_description="client_id is too long")
    identity = Identity(uid=f"client:{client}", email="", name=client)
    User.objects.seen(identity.uid)
    return _token_response(identity, client_credentials_scope(scope), None)


def token_revoke(*, token: str, client_id: str) -> None:
    """docs/protocol/oauth.md §5: delete one live refresh token (no tombstone, the family untouched). Unknown tokens are
    fine."""
    if not token:
        return
    config = settings.GATEWAY
    row = RefreshToken.objects.filter(token_checksum=digest(token), revoked__isnull=True).first()
    if row is None or _now() >= int(row.created.timestamp()) + config.refresh_token_ttl_seconds:
        return
    family = TokenFamily.objects.filter(pk=row.token_family).first()
    stored_client = family.client_id if family else ""
    if stored_client and stored_client != (client_id or config.oauth_default_client_id):
        raise Unauthorized("invalid_client")
    row.delete()


def tokens_revoke_all_of_user(uid: str) -> int:
    """The operator revokes every sign-in of `uid` (docs/operations.md): each refresh-token family of the user goes,
    tombstones included, with its pending authorization codes, so no new access token can be issued from them.
    Access tokens already issued are stateless and stay valid until they expire. Returns how many live refresh tokens
    were revoked."""
    families = list(TokenFamily.objects.filter(uid=uid).values_list("id", flat=True))
    with transaction.atomic():
        rows = RefreshToken.objects.filter(token_family__in=families) | RefreshToken.objects.filter(user__uid=uid)
        live: int = rows.filter(revoked__isnull=True).count()
        rows.delete()
        Grant.objects.filter(user__uid=uid).delete()
        TokenFamily.objects.filter(id__in=families).delete()
    return live


# ---------------------------------------------------------------------------------------------------------------
# Metadata


def client_registration() -> dict[str, Any]:
    """`POST /register` (docs/protocol/oauth.md §6): static metadata of the one public client."""
    config = settings.GATEWAY
    oob = "urn:ietf:wg:oauth:2.0:oob"
    uris = list(config.oauth_redirect_uris) or list(config.redirect_allowlist) or [oob]
    if oob not in uris:
        uris.append(oob)
    return {
        "client_id": config.oauth_default_client_id,
        "token_endpoint_auth_method": "none",
        "redirect_uris": uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": config.oauth_client_name,
    }


def discovery_document() -> dict[str, Any]:
    """The discovery document (docs/protocol/oauth.md §7, scopes per docs/protocol/decisions.md O1)."""
    config = settings.GATEWAY
    base = config.public_base_url
    grants = ["authorization_code", "refresh_token"]
    if config.auth_mode == "demo":
        grants.append("client_credentials")
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "revocation_endpoint": f"{base}/oauth/token/revoke",
        "registration_endpoint": f"{base}/register",
        "response_types_supported": ["code"],
        "grant_types_supported": grants,
        "token_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["profile", "email", "device", "offline_access"],
        "authorization_response_iss_parameter_supported": True,  # RFC 9207 (decisions.md H6)
    }
