"""`rotate_route_tokens` in both modes: against the database, and over HTTP to a running memory-only gateway."""

from __future__ import annotations

import io
import json
import re
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from gateway_site.errors import Unauthorized
from gateway_site.operator import mint_operator_token, verify_operator_token
from tests.helpers import clean_env, daphne_server, run_manage
from tests.relay_helpers import register
from tunnels import tokens
from tunnels.models import IntegrationRoute

DEVICE = "dev_rotate0001"


def make_route(owner="owner-1", device=DEVICE, expires_in_days=90) -> str:
    now = datetime.now(tz=UTC)
    route_id = tokens.new_route_id()
    IntegrationRoute.objects.create(
        route_id=route_id,
        owner_uid=owner,
        device_id=device,
        interface_type="http",
        token_expires_at=now + timedelta(days=expires_in_days),
        token_hash=tokens.token_hash("old-token" * 5),
        created_at=now,
        updated_at=now,
    )
    return route_id


def run(*args) -> str:
    out = io.StringIO()
    call_command("rotate_route_tokens", *args, "--via", "db", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_rotate_one_route_in_the_database():
    register(DEVICE, "owner-1")
    route_id, other = make_route(), make_route()
    output = run("--route", route_id, "--grace", "0")
    assert re.search(
        rf"rotated {route_id} \(owner owner-1\): http://localhost:8080/integrations/{route_id}/[A-Za-z0-9_-]{{43}}\n",
        output,
    )
    assert output.endswith("1 route(s) rotated\n")
    match = re.search(r"/integrations/rt_[0-9a-f]+/([A-Za-z0-9_-]+)", output)
    assert match is not None
    token = match.group(1)
    assert IntegrationRoute.objects.get(route_id=route_id).token_hash == tokens.token_hash(token)
    assert IntegrationRoute.objects.get(route_id=other).token_hash == tokens.token_hash("old-token" * 5)


@pytest.mark.django_db
def test_rotate_every_route_of_an_owner_and_every_expired_one():
    register(DEVICE, "owner-1")
    register("dev_rotate0002", "owner-2")
    mine = [make_route(), make_route()]
    expired = make_route("owner-2", "dev_rotate0002", expires_in_days=-1)
    output = run("--owner", "owner-1")
    assert all(route_id in output for route_id in mine) and expired not in output
    assert "old token valid until" in output
    output = run("--expired")
    assert expired in output and output.endswith("1 route(s) rotated\n")


@pytest.mark.django_db
def test_command_argument_errors():
    with pytest.raises(CommandError, match="choose --route, --owner or --expired"):
        run()
    with pytest.raises(CommandError, match="--grace must be between 0 and 1800"):
        run("--owner", "x", "--grace", "5000")
    with pytest.raises(CommandError, match="^malformed route id: not-a-route "):
        run("--route", "not-a-route")


@pytest.mark.django_db
def test_unknown_routes_are_named_and_nothing_is_rotated():
    register(DEVICE, "owner-1")
    known = make_route()
    missing = tokens.new_route_id()
    with pytest.raises(CommandError, match=f"^unknown route: {missing}$"):
        run("--route", known, "--route", missing)
    assert IntegrationRoute.objects.get(route_id=known).token_hash == tokens.token_hash("old-token" * 5)
    output = run("--route", known, "--route", make_route())
    assert output.endswith("2 route(s) rotated\n")


def test_unknown_route_exits_non_zero_with_its_name(tmp_path):
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'gateway.sqlite3'}")
    assert run_manage("migrate", "-v", "0", env=env).returncode == 0
    missing = tokens.new_route_id()
    result = run_manage("rotate_route_tokens", "--route", missing, env=env)
    assert result.returncode != 0
    assert result.stderr.strip() == f"CommandError: unknown route: {missing}"


def test_the_database_mode_needs_a_persistent_database():
    result = run_manage("rotate_route_tokens", "--expired", "--via", "db", env=clean_env())
    assert result.returncode != 0 and "--via db needs a persistent DATABASE_URL" in result.stderr


def test_operator_tokens_are_single_use_and_audience_bound():
    token = mint_operator_token()
    assert verify_operator_token(f"Bearer {token}")["sub"] == "operator"
    with pytest.raises(Unauthorized, match="already used"):
        verify_operator_token(f"Bearer {token}")
    from oauthapp.tokens import Identity, issue_access_token

    with pytest.raises(Unauthorized, match="invalid operator token"):
        verify_operator_token("Bearer " + issue_access_token(Identity("owner-1"), "device")[0])
    with pytest.raises(Unauthorized, match="missing operator token"):
        verify_operator_token(None)


def test_rotate_over_http_against_a_running_memory_only_gateway():
    with daphne_server() as server:
        # A user creates a route through the API (demo mode registers the device on the fly).
        def call(method, path, body=None, headers=None):
            request = urllib.request.Request(
                server.base_url + path,
                data=json.dumps(body).encode() if body is not None else None,
                method=method,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        form = urllib.request.Request(
            server.base_url + "/oauth/token", data=b"grant_type=client_credentials&client_id=ops-test", method="POST"
        )
        with urllib.request.urlopen(form, timeout=10) as response:
            token = json.loads(response.read())["access_token"]
        created = call(
            "POST",
            "/gateway/v1/integrations/routes",
            {"device_id": DEVICE, "interface_type": "http"},
            {"Authorization": f"Bearer {token}"},
        )
        route_id = created["route"]["route_id"]

        # The command's own PORT and PUBLIC_BASE_URL differ from the server's: it uses the server's issuer.
        result = run_manage(
            "rotate_route_tokens",
            "--route",
            route_id,
            "--grace",
            "0",
            "--url",
            server.base_url,
            env=clean_env(PORT="9999", PUBLIC_BASE_URL="https://elsewhere.example.com"),
        )
        assert result.returncode == 0, result.stderr
        assert f"rotated {route_id} (owner client:ops-test)" in result.stdout
        match = re.search(r": (http://\S+)", result.stdout)
        assert match is not None
        new_url = match.group(1)
        assert new_url.rsplit("/", 1)[1] != created["route_token"]

        # The old URL is gone on the server: 404 (the route is not active, so a valid token would be 503).
        def ingress_status(route_token: str) -> int:
            request = urllib.request.Request(
                f"{server.base_url}/integrations/{route_id}/{route_token}", method="POST", data=b""
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code

        assert ingress_status(created["route_token"]) == 404
        assert ingress_status(new_url.rsplit("/", 1)[1]) == 503  # valid token; the route is just not active
        # Without the server's key nobody can ask it to rotate.
        wrong = run_manage(
            "rotate_route_tokens",
            "--route",
            route_id,
            "--url",
            server.base_url,
            env=clean_env(JWT_SIGNING_KEY="some-other-signing-key-of-enough-length"),
        )
        assert wrong.returncode != 0 and "401" in wrong.stderr
        unknown = tokens.new_route_id()
        missing = run_manage("rotate_route_tokens", "--route", unknown, "--url", server.base_url, env=clean_env())
        assert missing.returncode != 0 and f"404 unknown route: {unknown}" in missing.stderr


def test_http_mode_reports_an_unreachable_gateway():
    from tests.helpers import free_port

    result = run_manage("rotate_route_tokens", "--expired", "--url", f"http://127.0.0.1:{free_port()}", env=clean_env())
    assert result.returncode != 0 and "cannot reach the gateway" in result.stderr
