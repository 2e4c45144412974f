"""`/oauth/authorize` (docs/protocol/oauth.md §3 with docs/protocol/decisions.md O1, O7): processing order, identity,
pages and answers."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from oauthapp.identity import demo_uid_for_email
from oauthapp.redirects import redirect_allowed
from tests.oauth_helpers import CALLBACK, CHALLENGE, OOB, authorize_params, exchange, jwt_payload

pytestmark = pytest.mark.django_db
KEY = "test-signing-secret-at-least-32-bytes-long"


def post(client, **params):
    return client.post("/oauth/authorize", authorize_params(demo_email="alice@example.com", **params))


# Processing order (§3.2): the first failure wins.


def test_step1_unsupported_response_type(client):
    response = post(client, response_type="token", client_id="other", redirect_uri="")
    assert (response.status_code, response.json()) == (400, {"error": "unsupported response_type"})


def test_step2_unknown_client(client):
    response = post(client, client_id="Commands-Agent", redirect_uri="")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_client", "error_description": "unknown client_id"}


def test_step3_redirect_required(client):
    response = post(client, redirect_uri=None, code_challenge="")
    assert (response.status_code, response.json()) == (400, {"error": "redirect_uri is required"})


def test_step4_redirect_not_allowed(client):
    response = post(client, redirect_uri="https://evil.example/callback", code_challenge="")
    assert (response.status_code, response.json()) == (400, {"error": "redirect_uri not allowed"})


def test_step5_identity_errors_come_before_pkce(client, configure):
    configure(auth_mode="oidc", oidc_issuer_url="http://127.0.0.1:9", oidc_client_id="c")
    response = client.post("/oauth/authorize", authorize_params(code_challenge=""))
    assert (response.status_code, response.json()) == (401, {"error": "id token is required"})


@pytest.mark.parametrize(
    ("overrides", "description"),
    [
        ({"code_challenge": ""}, "code_challenge is required (PKCE)"),
        ({"code_challenge": "a" * 42}, "code_challenge must be 43-128 characters (RFC 7636)"),
        ({"code_challenge": "a" * 129}, "code_challenge must be 43-128 characters (RFC 7636)"),
        ({"code_challenge_method": ""}, "code_challenge_method is required; use S256"),
        ({"code_challenge_method": "PLAIN"}, "code_challenge_method 'plain' is not supported; use S256"),
        ({"code_challenge_method": "S512"}, "unsupported code_challenge_method: S512"),
    ],
)
def test_steps6_to_8_pkce(client, overrides, description):
    response = post(client, **overrides)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": description}


def test_challenge_method_is_case_insensitive_and_128_chars_fit(client):
    assert post(client, code_challenge_method="s256", code_challenge="A" * 128).status_code == 303


def test_get_with_broken_pkce_fails_before_the_page(client):
    response = client.get("/oauth/authorize", authorize_params(code_challenge="short"))
    assert response.status_code == 400
    assert response.json()["error_description"] == "code_challenge must be 43-128 characters (RFC 7636)"


# Scopes (docs/protocol/decisions.md O1).


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        (None, "profile email"),
        ("profile email", "profile email"),
        ("openid profile", "profile"),
        ("openid", "profile email"),
        ("profile device", "profile device"),
        ("read_assets write_assets offline_access device", "offline_access device"),
        ("gateway:session gateway:share unknown", "profile email"),
        ("profile profile", "profile profile"),
    ],
)
def test_scopes_are_normalised(client, requested, granted):
    response = post(client, response_mode="json", **({"scope": requested} if requested else {}))
    code = response.json()["code"]
    tokens = exchange(client, code).json()
    assert tokens["scope"] == granted
    assert jwt_payload(tokens["access_token"])["scope"] == granted


# Identity (§3.3, §10).


def test_demo_uid_vector():
    assert demo_uid_for_email("alice@example.com", KEY) == "demo-3025bc58f9e54175"
    assert demo_uid_for_email("  Alice@Example.com ", KEY) == "demo-3025bc58f9e54175"


def claims_for(client, **params) -> dict:
    response = client.post("/oauth/authorize", authorize_params(response_mode="json", **params))
    assert response.status_code == 200, response.content
    return jwt_payload(exchange(client, response.json()["code"]).json()["access_token"])


def test_demo_email_gives_the_hmac_uid_and_keeps_case(client):
    claims = claims_for(client, demo_email=" Alice@Example.com ", demo_uid="ignored", demo_name="Alice")
    assert (claims["sub"], claims["email"], claims["name"]) == ("demo-3025bc58f9e54175", "Alice@Example.com", "Alice")


def test_demo_name_defaults_to_the_email(client):
    assert claims_for(client, demo_email="bob@example.com")["name"] == "bob@example.com"


def test_demo_uid_is_used_verbatim(client):
    claims = claims_for(client, demo_uid="custom-uid")
    assert claims["sub"] == "custom-uid" and claims["name"] == "custom-uid" and "email" not in claims


def test_anonymous_post_gets_a_throwaway_uid(client):
    claims = claims_for(client)
    assert re.fullmatch(r"demo-[0-9a-f]{10}", claims["sub"]) and "email" not in claims


def test_identity_is_read_from_the_query_first(client):
    response = client.get("/oauth/authorize", authorize_params(demo_email="q@example.com"))
    assert response.status_code == 302


def test_overlong_demo_uid_is_refused(client):
    response = client.post("/oauth/authorize", authorize_params(demo_uid="u" * 256))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# Pages (§3.4).


def test_demo_page_has_the_form_and_sorted_hidden_fields(client):
    response = client.get("/oauth/authorize", authorize_params(state="s<1>", scope="profile"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "Sign In — Commands.com Gateway" in html and "Demo Mode" in html
    assert "Non-production · AUTH_MODE=demo" in html
    assert re.search(r'<input[^>]+name="demo_email"[^>]+type="email"[^>]+required', html)
    assert 'name="demo_name"' in html and 'name="demo_uid"' not in html
    assert 'action="/oauth/authorize"' in html
    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)
    assert [name for name, _ in hidden] == [
        "client_id",
        "code_challenge",
        "code_challenge_method",
        "redirect_uri",
        "response_mode",
        "response_type",
        "scope",
        "state",
    ]
    values = dict(hidden)
    assert values["client_id"] == "commands-agent" and values["state"] == "s&lt;1&gt;"
    assert values["response_mode"] == "" and values["code_challenge"] == CHALLENGE


def test_id_token_form_without_firebase_keys(client, configure):
    configure(auth_mode="oidc", oidc_issuer_url="http://127.0.0.1:9", oidc_client_id="c")
    html = client.get("/oauth/authorize", authorize_params()).content.decode()
    assert "OIDC" in html and re.search(r'<textarea[^>]+name="id_token"[^>]+required', html)


def test_firebase_popup_page_with_both_keys(client, configure):
    configure(auth_mode="firebase", firebase_project_id="proj-1", firebase_api_key="api-key-1")
    html = client.get("/oauth/authorize", authorize_params()).content.decode()
    assert "Continue with Google" in html and "Continue with GitHub" in html
    assert "https://www.gstatic.com/firebasejs/9.22.2/firebase-app-compat.js" in html
    assert '"proj-1"' in html and '"api-key-1"' in html
    assert 'name="id_token"' in html


# Answers (§3.5, O7).


def test_redirect_keeps_query_sorts_keys_and_carries_the_issuer(client, configure):
    configure(redirect_allowlist=("http://localhost:61696/callback?z=1&a=2",))
    response = post(client, redirect_uri="http://127.0.0.1:50123/callback?z=1&a=2", state="st 1")
    assert response.status_code == 303  # a POST sign-in answers with 303 See Other (decisions.md H6)
    location = response["Location"]
    assert location.startswith("http://127.0.0.1:50123/callback?a=2&code=")
    assert location.endswith("&iss=http%3A%2F%2Flocalhost%3A8080&state=st+1&z=1")


@pytest.mark.parametrize("with_fragment", ["http://localhost:61696/callback#frag", "http://localhost:61696/callback#"])
def test_a_redirect_uri_with_a_fragment_is_refused(client, configure, with_fragment):
    configure(redirect_allowlist=("http://localhost:61696/callback", with_fragment))
    response = post(client, redirect_uri=with_fragment)
    assert response.status_code == 400 and "Location" not in response


def test_redirect_without_state_has_code_and_issuer_only(client):
    location = post(client)["Location"]
    query = parse_qs(urlsplit(location).query)
    assert set(query) == {"code", "iss"} and query["iss"] == ["http://localhost:8080"]
    assert location.startswith(CALLBACK + "?code=")


def test_code_format(client):
    code = parse_qs(urlsplit(post(client)["Location"]).query)["code"][0]
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", code)


@pytest.mark.parametrize(
    "params",
    [{"redirect_uri": OOB}, {"response_mode": "JSON"}],
)
def test_json_answer(client, params):
    response = post(client, state="st-123", **params)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"code", "state", "redirect_uri", "expires_in", "code_challenge", "challenge_method", "iss"}
    assert body["state"] == "st-123" and body["expires_in"] == 300 and body["iss"] == "http://localhost:8080"
    assert body["code_challenge"] == CHALLENGE and body["challenge_method"] == "S256"


def test_accept_json_gives_json(client):
    response = client.post(
        "/oauth/authorize", authorize_params(demo_email="a@b.c"), HTTP_ACCEPT="application/json, text/plain"
    )
    assert response.status_code == 200 and response.json()["state"] == ""


def test_oob_in_a_browser_shows_the_code_page(client):
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = client.post(
        "/oauth/authorize", authorize_params(demo_email="a@b.c", redirect_uri=OOB), HTTP_ACCEPT=accept
    )
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    match = re.search(r'<code class="value" id="code">([^<]+)</code>', response.content.decode())
    assert match is not None
    code = match.group(1)
    assert exchange(client, code, redirect_uri=OOB).status_code == 200


@pytest.mark.parametrize("accept", ["*/*", "", "text/html, application/json"])
def test_oob_for_scripts_stays_json(client, accept):
    response = client.post(
        "/oauth/authorize", authorize_params(demo_email="a@b.c", redirect_uri=OOB), HTTP_ACCEPT=accept
    )
    assert response.json()["redirect_uri"] == OOB


# Redirect allowlist (§3.6).

ALLOW = (
    "http://localhost:61696/callback",
    "http://localhost:3000/callback",
    "urn:ietf:wg:oauth:2.0:oob",
    "http://localhost:8080/console",
)


@pytest.mark.parametrize(
    "uri",
    [
        "http://localhost:61696/callback",
        "http://localhost:50000/callback",
        "http://127.0.0.1:49152/callback",
        "http://[::1]:49152/callback",
        "HTTP://LOCALHOST:4000/callback",
        "http://127.0.0.1:9999/console",
        "urn:ietf:wg:oauth:2.0:oob",
        "  http://localhost:61696/callback  ",
    ],
)
def test_allowed_redirects(uri):
    assert redirect_allowed(uri, ALLOW)


@pytest.mark.parametrize(
    "uri",
    [
        "",
        "http://localhost/callback",
        "http://localhost:50000/Callback",
        "http://localhost:50000/callback/",
        "http://localhost:50000/callback?x=1",
        "https://localhost:50000/callback",
        "http://user@localhost:50000/callback",
        "http://user:pw@localhost:61696/callback",
        "http://example.com:61696/callback",
        "http://localhost:99999/callback",
        "urn:ietf:wg:oauth:2.0:oob:auto",
        "http://localhost:61696/callback/../callback",
    ],
)
def test_refused_redirects(uri):
    assert not redirect_allowed(uri, ALLOW)


def test_head_is_answered_like_get_without_a_body(client):
    response = client.head("/oauth/authorize", authorize_params())
    assert response.status_code == 200 and response.content == b""


@pytest.mark.parametrize(
    "query",
    [
        "redirect_uri=%ff%fe&code_challenge=" + CHALLENGE + "&code_challenge_method=S256",
        "redirect_uri=" + CALLBACK + "&code_challenge=" + "a" * 100_000 + "&code_challenge_method=S256",
        "redirect_uri=" + CALLBACK + "&redirect_uri=https://evil.example&code_challenge=" + CHALLENGE,
    ],
)
def test_bad_authorize_input_gets_a_json_400(client, query):
    response = client.get(f"/oauth/authorize?{query}&demo_email=a@b.c")
    assert response.status_code == 400
    assert "error" in response.json()


def test_huge_state_is_echoed(client):
    response = post(client, state="s" * 10_000, response_mode="json")
    assert response.status_code == 200 and response.json()["state"] == "s" * 10_000


def test_the_oob_page_names_the_issuer_and_the_sign_in_page_cannot_be_framed(client):
    accept = "text/html,application/xhtml+xml"
    page = client.post("/oauth/authorize", authorize_params(demo_email="a@b.c", redirect_uri=OOB), HTTP_ACCEPT=accept)
    assert '<span id="iss">http://localhost:8080</span>' in page.content.decode()
    sign_in = client.get("/oauth/authorize", authorize_params())
    assert sign_in.status_code == 200 and sign_in["Content-Security-Policy"] == "frame-ancestors 'none'"


def test_an_id_token_in_the_query_string_is_ignored(client, configure):
    configure(auth_mode="oidc")
    response = client.get("/oauth/authorize", authorize_params(id_token="eyJ.fake.token"))
    assert response.status_code == 200 and b"<form" in response.content  # the sign-in page: nothing was verified
