"""Bearer authentication for `/gateway/v1/*` (docs/protocol/oauth.md §9, docs/protocol/decisions.md O2/O3).

One reusable piece, three uses: `BearerAuthMiddleware` authenticates every `/gateway/v1/*` request before routing
(Django views), `principal_from_scope` serves ASGI consumers (SSE streams), and `WebSocketBearerMiddleware` puts the
principal, or the refusal, into a WebSocket scope. `check_scopes` enforces the `device` scope where O2 says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.http import HttpResponse
from django.utils.deprecation import MiddlewareMixin

from gateway_site.errors import ApiError, Forbidden, Unauthorized, render
from gateway_site.middleware import render_exception
from gateway_site.signing import InvalidToken, verify_access_token

if TYPE_CHECKING:
    from gateway_site.requests import GatewayRequest

PROTECTED_PREFIX = "/gateway/v1/"
OPTIONAL_AUTH_PATHS = frozenset({"/gateway/v1/health"})
MISSING_TOKEN = "missing bearer token"  # noqa: S105 - an error message, not a secret
INVALID_TOKEN = "invalid access token: invalid jwt token"  # noqa: S105


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: uid (`sub`), email, display name (`name`) and granted scopes."""

    uid: str
    email: str
    name: str
    scopes: tuple[str, ...]

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    raw_scope = claims.get("scope")
    scopes = dict.fromkeys(raw_scope.split()) if isinstance(raw_scope, str) else {}
    email = claims.get("email")
    name = claims.get("name")
    return Principal(
        uid=str(claims["sub"]).strip(),
        email=email if isinstance(email, str) else "",
        name=name if isinstance(name, str) else "",
        scopes=tuple(scopes),
    )


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or ''."""
    value = (header or "").strip()
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def authenticate(header: str | None) -> Principal:
    """Validate an Authorization header value; raises Unauthorized with the contract's message."""
    token = bearer_token(header)
    if not token:
        raise Unauthorized(MISSING_TOKEN)
    try:
        return principal_from_claims(verify_access_token(token))
    except InvalidToken:
        raise Unauthorized(INVALID_TOKEN) from None


def authenticate_optional(header: str | None) -> Principal | None:
    """Like `authenticate`, but a missing or bad token means anonymous."""
    try:
        return authenticate(header)
    except Unauthorized:
        return None


def insufficient_scope(required: Iterable[str], principal: Principal) -> Forbidden:
    required = list(required)
    missing = [scope for scope in required if not principal.has_scope(scope)]
    return Forbidden("insufficient_scope", required_scopes=required, missing_scopes=missing)


def check_scopes(principal: Principal, *required: str) -> None:
    if any(not principal.has_scope(scope) for scope in required):
        raise insufficient_scope(required, principal)


def _header_from_scope(scope: Mapping[str, Any]) -> str | None:
    for name, value in scope.get("headers") or ():
        if name.lower() == b"authorization":
            return bytes(value).decode("latin-1")
    return None


def principal_from_scope(scope: Mapping[str, Any]) -> Principal:
    """Authenticate an ASGI connection scope by its Authorization header; raises Unauthorized."""
    return authenticate(_header_from_scope(scope))


class BearerAuthMiddleware(MiddlewareMixin):
    """Every `/gateway/v1/*` request needs a valid token before routing, so unknown paths there answer 401 first.

    Sets `request.principal` (None on the optional-auth paths when anonymous). Works in sync and async stacks.
    """

    def process_request(self, request: GatewayRequest) -> HttpResponse | None:
        path = request.path_info
        header = request.headers.get("Authorization")
        if path in OPTIONAL_AUTH_PATHS:
            request.principal = authenticate_optional(header)
        elif path.startswith(PROTECTED_PREFIX):
            try:
                request.principal = authenticate(header)
            except ApiError as exc:
                return render_exception(exc)
        else:
            request.principal = None
        return None


class WebSocketBearerMiddleware:
    """Channels middleware: sets `scope["principal"]` or, when the token is missing or bad, `scope["auth_error"]`.

    Consumers refuse the upgrade themselves (they know which scopes they need), with `refuse_websocket`.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        scope = dict(scope)
        try:
            scope["principal"] = principal_from_scope(scope)
            scope["auth_error"] = None
        except Unauthorized as exc:
            scope["principal"] = None
            scope["auth_error"] = exc
        return await self.app(scope, receive, send)


def websocket_denial_supported(scope: Mapping[str, Any]) -> bool:
    return "websocket.http.response" in (scope.get("extensions") or {})


async def refuse_websocket(consumer: Any, error: ApiError) -> None:
    """Refuse an upgrade with the error's exact status and JSON body where the server supports the denial-response
    extension (uvicorn); elsewhere (Daphne) a plain close before accept, which the server answers with 403
    (docs/protocol/decisions.md R7)."""
    if websocket_denial_supported(consumer.scope):
        rendered = render(error)
        start = {"type": "websocket.http.response.start", "status": rendered.status, "headers": rendered.asgi_headers()}
        await consumer.base_send(start)
        await consumer.base_send({"type": "websocket.http.response.body", "body": rendered.body})
    else:
        await consumer.close()
