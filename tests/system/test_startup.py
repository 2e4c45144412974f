"""Start-up as an operator sees it: one-line configuration errors, `.env` loading, the deploy check, a live server."""

from __future__ import annotations

import json

import pytest

from tests.helpers import TEST_KEY, clean_env, daphne_server, http_get_raw, run_manage


@pytest.mark.parametrize("command", [["runserver"], ["check"]])
def test_short_signing_key_stops_start_up_with_one_line(command):
    result = run_manage(*command, env=clean_env(JWT_SIGNING_KEY="short"))
    assert result.returncode == 1
    assert result.stderr == "configuration error: JWT_SIGNING_KEY must be at least 32 bytes\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_dotenv_in_the_working_directory_is_loaded_and_the_environment_wins(tmp_path):
    (tmp_path / ".env").write_text(
        "JWT_SIGNING_KEY=dotenv-signing-key-that-is-long-enough\nPORT=9123\nAUTH_MODE=oidc\n"
    )
    env = clean_env(AUTH_MODE="demo")
    del env["DOTENV_PATH"], env["JWT_SIGNING_KEY"]
    script = "from django.conf import settings as s; g = s.GATEWAY; print(g.port, g.auth_mode, len(g.jwt_signing_key))"
    result = run_manage("shell", "--no-imports", "-c", script, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["9123", "demo", str(len("dotenv-signing-key-that-is-long-enough"))]


def test_malformed_dotenv_stops_start_up(tmp_path):
    (tmp_path / ".env").write_text("# config\nnot-a-key-value-line\n")
    env = clean_env()
    del env["DOTENV_PATH"]
    result = run_manage("check", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "configuration error: dotenv: .env:2: malformed line, expected KEY=VALUE\n"


PRODUCTION = {
    "JWT_SIGNING_KEY": "a-real-production-signing-key-0123456789abcdef",
    "PUBLIC_BASE_URL": "https://gateway.example.com",
    "PROXY_HEADER": "X-Forwarded-For",
    "AUTH_MODE": "oidc",
    "OIDC_ISSUER_URL": "https://accounts.example.com",
    "OIDC_CLIENT_ID": "gateway",
    "DEMO_AUTH_DISABLED": "true",
}


def test_deploy_check_is_clean_with_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=clean_env(**PRODUCTION))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("overrides", "check_id", "names"),
    [
        ({"AUTH_MODE": "demo", "DEMO_AUTH_DISABLED": "false"}, "gateway.W001", "AUTH_MODE=demo"),
        ({"WEB_CONCURRENCY": "4"}, "gateway.W002", "WEB_CONCURRENCY=4"),
        ({"DJANGO_DEBUG": "true"}, "gateway.W003", "DJANGO_DEBUG=true"),
        ({"PUBLIC_BASE_URL": "http://gateway.example.com"}, "gateway.W004", "PUBLIC_BASE_URL=http://"),
    ],
)
def test_deploy_check_warns_about_dangerous_settings(overrides, check_id, names):
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=clean_env(**{**PRODUCTION, **overrides}))
    assert result.returncode == 1
    assert f"({check_id})" in result.stderr and names in result.stderr, result.stderr


@pytest.mark.parametrize("url", ["http://localhost:8080", "http://127.0.0.1:8091", "http://[::1]:8080"])
def test_demo_mode_on_loopback_is_not_a_deploy_warning(url):
    env = clean_env(PUBLIC_BASE_URL=url)
    result = run_manage("check", "--deploy", env=env)
    assert "gateway.W001" not in result.stderr and "gateway.W004" not in result.stderr


def test_demo_mode_on_a_public_address_says_so_at_start_up():
    script = "import gateway_site.asgi"
    result = run_manage(
        "shell", "--no-imports", "-c", script, env=clean_env(PUBLIC_BASE_URL="https://gateway.example.com")
    )
    assert result.returncode == 0, result.stderr
    demo_lines = [line for line in result.stderr.splitlines() if "AUTH_MODE=demo" in line]
    assert len(demo_lines) == 1 and "https://gateway.example.com" in demo_lines[0]
    assert "set AUTH_MODE=oidc (or firebase) and DEMO_AUTH_DISABLED=true" in demo_lines[0]


def test_in_memory_database_is_migrated_when_the_server_boots():
    script = (
        "import gateway_site.asgi; from django.db import connection; "
        "print('oauth2_provider_application' in connection.introspection.table_names())"
    )
    result = run_manage("shell", "--no-imports", "-c", script, env=clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_daphne_serves_healthz_over_a_socket():
    with daphne_server(LOG_FORMAT="json") as server:
        raw = http_get_raw(server.port, "/healthz")
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"content-type: application/json; charset=utf-8" in head.lower()
        data = json.loads(body)
        assert data["status"] == "ok" and data["service"] == "oss-commands-gateway"
        lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
        assert TEST_KEY not in server.log()
        assert TEST_KEY not in server.log()
    startup = next(line for line in lines if line["msg"] == "gateway startup")
    assert startup["auth_mode"] == "demo" and startup["public_base_url"] == "http://localhost:8080"
    assert any(line["msg"].startswith("AUTH_MODE=demo: anyone who can reach") for line in lines)
    assert any(line["msg"] == "request" and line["path"] == "/healthz" and line["status"] == 200 for line in lines)


def test_models_and_migrations_agree():
    result = run_manage("makemigrations", "--check", "--dry-run", env=clean_env())
    assert result.returncode == 0, result.stdout + result.stderr
