"""The operator console: its page, the sign-in exchange and the operator API (docs/operations.md).

The API under /console/operator/api/ accepts either an operator session (the HttpOnly, SameSite=Strict cookie set by
the sign-in exchange, plus the session's CSRF token in `X-Operator-CSRF` on every call that changes something) or a
60-second command token (`Authorization: Bearer`, what the management commands send). Without either it answers
401; a user's access token gets 403. Views parse, call one operator service and render.
"""

from __future__ import annotations

import hmac
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from console import operator_services as services
from console.views import CSP
from gateway_site.auth import authenticate, bearer_token
from gateway_site.errors import BadRequest, Forbidden, Unauthorized, json_response
from gateway_site.jsonbody import json_object
from gateway_site.operator import (
    SESSION_COOKIE,
    SESSION_COOKIE_PATH,
    SESSION_TTL_SECONDS,
    OperatorSession,
    close_session,
    read_session,
    verify_operator_token,
)
from gateway_site.views import api_view

CSRF_HEADER = "X-Operator-CSRF"
NO_STORE = {"Cache-Control": "no-store"}


def _answer(data: Any, status: int = 200) -> HttpResponse:
    return json_response(data, status=status, headers=NO_STORE)


def _body(request: HttpRequest) -> dict[str, Any]:
    """The JSON object body; an empty body counts as `{}`."""
    if not request.body:
        return {}
    return json_object(request, "invalid json body")


def _operator(request: HttpRequest, *, changes: bool) -> str:
    """Who is calling, as the audit log names them; raises 401 (no operator credential), 403 (a user's token, or a
    missing or wrong CSRF token on a call that changes something)."""
    header = request.headers.get("Authorization")
    if bearer_token(header):
        try:
            return services.command_operator(verify_operator_token(header))
        except Unauthorized:
            try:
                authenticate(header)
            except Unauthorized:
                raise Unauthorized("invalid operator token") from None
            raise Forbidden("not an operator") from None
    found = read_session(request.COOKIES.get(SESSION_COOKIE))
    if found is None:
        raise Unauthorized("operator session required")
    _, session = found
    if changes and not hmac.compare_digest(request.headers.get(CSRF_HEADER, "").encode(), session.csrf.encode()):
        raise Forbidden("csrf token missing or wrong")
    return session.operator


# -- the page ------------------------------------------------------------------------------------------------------


def _page(request: HttpRequest) -> HttpResponse:
    config = settings.GATEWAY
    context = {
        "client_name": config.oauth_client_name,
        "email_sign_in": config.auth_mode in ("oidc", "firebase") and bool(config.operator_emails),
    }
    response = render(request, "console/operator.html", context)
    response["Cache-Control"] = "no-store"
    response["Content-Security-Policy"] = CSP
    response["Referrer-Policy"] = "no-referrer"
    return response


@api_view("GET")
def page(request: HttpRequest) -> HttpResponse:
    return _page(request)


@api_view("GET")
def login_page(request: HttpRequest) -> HttpResponse:
    """Where a sign-in link points; its script exchanges the token in the fragment (never sent here) for a session."""
    return _page(request)


# -- the session ---------------------------------------------------------------------------------------------------


def _with_cookie(request: HttpRequest, cookie: str, session: OperatorSession) -> HttpResponse:
    response = _answer(session.view(), status=201)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_TTL_SECONDS,
        path=SESSION_COOKIE_PATH,
        secure=request.is_secure(),
        httponly=True,
        samesite="Strict",
    )
    return response


@api_view("GET", "POST", "DELETE")
def session(request: HttpRequest) -> HttpResponse:
    """POST `{"token"}` (a sign-in link's) or a user's bearer token (OPERATOR_EMAILS): open a session. GET: the
    current session. DELETE: sign out."""
    if request.method == "POST":
        token = _body(request).get("token")
        if token is not None:
            if not isinstance(token, str):
                raise BadRequest("token must be a string")
            return _with_cookie(request, *services.session_open_with_link(token))
        if not bearer_token(request.headers.get("Authorization")):
            raise BadRequest("token is required")
        principal = authenticate(request.headers.get("Authorization"))
        return _with_cookie(request, *services.session_open_with_user(principal))
    found = read_session(request.COOKIES.get(SESSION_COOKIE))
    if found is None:
        raise Unauthorized("operator session required")
    session_id, current = found
    if request.method == "GET":
        return _answer(current.view())
    _operator(request, changes=True)
    close_session(session_id)
    response = _answer({"ok": True})
    response.delete_cookie(SESSION_COOKIE, path=SESSION_COOKIE_PATH, samesite="Strict")
    return response


# -- listings ------------------------------------------------------------------------------------------------------


@api_view("GET")
def overview(request: HttpRequest) -> HttpResponse:
    _operator(request, changes=False)
    return _answer(services.overview())


@api_view("GET")
def users(request: HttpRequest) -> HttpResponse:
    _operator(request, changes=False)
    return _answer(services.users())


@api_view("GET")
def devices(request: HttpRequest) -> HttpResponse:
    _operator(request, changes=False)
    return _answer(services.devices())


@api_view("GET")
def routes(request: HttpRequest) -> HttpResponse:
    _operator(request, changes=False)
    return _answer(services.routes())


# -- actions -------------------------------------------------------------------------------------------------------


@api_view("POST")
def disconnect_agent(request: HttpRequest, device_id: str) -> HttpResponse:
    return _answer(services.disconnect_agent(device_id, operator=_operator(request, changes=True)))


@api_view("POST")
def disable_route(request: HttpRequest, route_id: str) -> HttpResponse:
    return _answer(services.set_route_disabled(route_id, disabled=True, operator=_operator(request, changes=True)))


@api_view("POST")
def enable_route(request: HttpRequest, route_id: str) -> HttpResponse:
    return _answer(services.set_route_disabled(route_id, disabled=False, operator=_operator(request, changes=True)))


@api_view("POST")
def rotate_route_token(request: HttpRequest, route_id: str) -> HttpResponse:
    operator = _operator(request, changes=True)
    grace = _body(request).get("grace_seconds", 300)
    if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= 1800:
        raise BadRequest("grace_seconds must be an integer between 0 and 1800")
    return _answer(services.rotate_route_token(route_id, grace_seconds=grace, operator=operator))


@api_view("POST")
def revoke_user(request: HttpRequest) -> HttpResponse:
    operator = _operator(request, changes=True)
    return _answer(services.revoke_user(_body(request).get("uid"), operator=operator))
