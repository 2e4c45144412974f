"""OAuth endpoints: parse the request, call a service, render JSON, a redirect or a sign-in page."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from gateway_site import metrics, ratelimit
from gateway_site.auth import bearer_token
from gateway_site.clientip import client_ip_from_request
from gateway_site.errors import BadRequest, json_response
from gateway_site.views import api_view
from oauthapp import services, tokens
from oauthapp.identity import SignInInput, resolve_identity
from oauthapp.params import authorize_params, body_params

OAUTH_LIMIT_PER_WINDOW = 30
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
HIDDEN_FIELDS = (
    "client_id",
    "code_challenge",
    "code_challenge_method",
    "redirect_uri",
    "response_mode",
    "response_type",
    "scope",
    "state",
)


def _rate_limit(request: HttpRequest) -> None:
    """One shared fixed window of 30 requests per client IP for authorize, token and revoke (docs/protocol/oauth.md
    §11)."""
    window = settings.GATEWAY.ingress_rate_window_seconds
    ratelimit.enforce(f"oauth:{client_ip_from_request(request)}", OAUTH_LIMIT_PER_WINDOW, window, scope="oauth")


def _sign_in_page(request: HttpRequest, auth: services.AuthorizeRequest) -> HttpResponse:
    config = settings.GATEWAY
    hidden = {
        "client_id": auth.client_id or config.oauth_default_client_id,
        "code_challenge": auth.code_challenge,
        "code_challenge_method": auth.code_challenge_method,
        "redirect_uri": auth.redirect_uri,
        "response_mode": auth.response_mode,
        "response_type": auth.response_type or "code",
        "scope": auth.scope,
        "state": auth.state,
    }
    context = {
        "client_name": config.oauth_client_name,
        "auth_mode": config.auth_mode,
        "hidden_fields": [(name, hidden[name]) for name in HIDDEN_FIELDS],
        "firebase_api_key": config.firebase_api_key,
        "firebase_project_id": config.firebase_project_id,
    }
    if config.auth_mode == "demo":
        template = "oauth/signin_demo.html"
    elif config.firebase_api_key and config.firebase_project_id:
        template = "oauth/signin_firebase.html"
    else:
        template = "oauth/signin_id_token.html"
    response = render(request, template, context)
    response["Cache-Control"] = "no-store"
    # The sign-in page is never framed by another site (clickjacking of the sign-in, decisions.md H6).
    response["Content-Security-Policy"] = "frame-ancestors 'none'"
    return response


def _prefers_html(accept: str) -> bool:
    return "text/html" in accept and "application/json" not in accept


@never_cache
@api_view("GET", "POST")
def authorize(request: HttpRequest) -> HttpResponse:
    _rate_limit(request)
    params = authorize_params(request)
    auth = services.AuthorizeRequest(
        response_type=params.get("response_type"),
        client_id=params.get("client_id"),
        redirect_uri=params.get("redirect_uri"),
        scope=params.get("scope"),
        state=params.get("state"),
        code_challenge=params.get("code_challenge"),
        code_challenge_method=params.get("code_challenge_method"),
        response_mode=params.get("response_mode"),
    )
    services.authorize_validate_client(
        response_type=auth.response_type, client_id=auth.client_id, redirect_uri=auth.redirect_uri
    )
    method = "GET" if request.method in ("GET", "HEAD") else "POST"
    sign_in = SignInInput(
        method=method,
        demo_email=params.get("demo_email"),
        demo_name=params.get("demo_name"),
        demo_uid=params.get("demo_uid"),
        # decisions.md H6: an ID token is read from the POST body (or the Authorization header), never the query
        # string, where it would end up in logs and browser history.
        id_token=bearer_token(request.headers.get("Authorization"))
        or request.POST.get("id_token", "")
        or request.POST.get("firebase_token", ""),
    )
    if method == "GET" and not (sign_in.demo_email or sign_in.demo_name or sign_in.demo_uid or sign_in.id_token):
        # Check PKCE before showing a page: a broken request fails now, not after the user signed in.
        services.authorize_validate_pkce(auth)
    identity = resolve_identity(sign_in)
    if identity is None:
        return _sign_in_page(request, auth)
    code = services.authorization_code_issue(request=auth, identity=identity)
    accept = request.headers.get("Accept", "")
    if (
        auth.redirect_uri == "urn:ietf:wg:oauth:2.0:oob"
        and auth.response_mode.lower() != "json"
        and _prefers_html(accept)
    ):
        response = render(
            request,
            "oauth/oob_code.html",
            {"code": code, "client_name": settings.GATEWAY.oauth_client_name, "iss": settings.GATEWAY.public_base_url},
        )
        response["Cache-Control"] = "no-store"
        return response
    if services.authorize_wants_json(request=auth, accept=accept):
        return json_response(services.authorize_json_answer(request=auth, code=code), headers=NO_STORE)
    location = services.authorize_redirect_location(redirect_uri=auth.redirect_uri, code=code, state=auth.state)
    response = _AllowlistedRedirect(location)
    if request.method == "POST":
        response.status_code = 303  # the browser follows a form POST's answer with a GET
    return response


class _AllowlistedRedirect(HttpResponseRedirect):
    """A 302 to a URI that passed the allowlist, which may name a custom scheme Django would otherwise refuse."""

    def __init__(self, location: str) -> None:
        self.allowed_schemes = [urlsplit(location).scheme or "http"]
        super().__init__(location)


@api_view("POST")
def token(request: HttpRequest) -> HttpResponse:
    _rate_limit(request)
    params = body_params(request)
    grant_type = params.get("grant_type")
    client_id = params.get("client_id")
    if grant_type == "authorization_code":
        body = services.token_exchange_code(
            code=params.get("code"),
            client_id=client_id,
            redirect_uri=params.get("redirect_uri"),
            code_verifier=params.get("code_verifier"),
        )
    elif grant_type == "refresh_token":
        body = services.token_refresh(refresh_token=params.get("refresh_token"), client_id=client_id)
    elif grant_type == "client_credentials":
        body = services.token_client_credentials(client_id=client_id, scope=params.get("scope"))
    else:
        raise BadRequest("unsupported grant_type")
    metrics.token_issued(grant_type)
    return json_response(body, headers=NO_STORE)


@api_view("POST")
def revoke(request: HttpRequest) -> HttpResponse:
    _rate_limit(request)
    params = body_params(request)
    services.token_revoke(token=params.get("token"), client_id=params.get("client_id"))
    return HttpResponse(b"OK", content_type="text/plain; charset=utf-8")


@api_view("POST")
def register(request: HttpRequest) -> HttpResponse:
    return json_response(services.client_registration())


@api_view("GET")
def discovery(request: HttpRequest) -> HttpResponse:
    return json_response(services.discovery_document())


@api_view("GET")
def jwks(request: HttpRequest) -> HttpResponse:
    return json_response(tokens.jwks())
