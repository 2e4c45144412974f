"""`DATABASE_URL` on a real PostgreSQL server (tests/postgres_server.py): the migrations apply, the gateway serves
from it under the production server, state outlives a restart, and overlong fields are the same 400 they are on
SQLite (docs/protocol/decisions.md: every stored string is length-checked before it reaches the database)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from gateway_site.config import ConfigError, load_config
from tests.e2ee import AgentSide
from tests.helpers import clean_env, daphne_server, run_manage
from tests.oauth_helpers import live_sign_in


def test_a_postgres_url_without_the_driver_is_a_clear_startup_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a))
    with pytest.raises(ConfigError) as caught:
        load_config({"JWT_SIGNING_KEY": "k" * 32, "DATABASE_URL": "postgres://u@127.0.0.1:5432/db"})
    assert str(caught.value) == (
        "DATABASE_URL is a PostgreSQL URL but psycopg is not installed (pip install '.[postgres]')"
    )


async def test_the_gateway_runs_on_postgresql(postgres_url):
    migrated = run_manage("migrate", "--no-input", env=clean_env(DATABASE_URL=postgres_url), timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    device = "dev_pg_" + uuid.uuid4().hex[:12]
    with daphne_server(DATABASE_URL=postgres_url) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            assert (await http.get("/readyz")).status_code == 200
            owner = {"Authorization": f"Bearer {await live_sign_in(http, 'owner@example.com', 'device')}"}
            key = {"algorithm": "ed25519", "public_key": AgentSide.new().identity_b64, "display_name": "pg box"}
            put = await http.put(f"/gateway/v1/devices/{device}/identity-key", json=key, headers=owner)
            assert put.status_code == 204, put.text

            too_long = await http.put(
                f"/gateway/v1/devices/{device}/identity-key", json={**key, "display_name": "n" * 129}, headers=owner
            )
            assert (too_long.status_code, too_long.json()) == (
                400,
                {"error": "display_name must be at most 128 characters"},
            )
            route = await http.post(
                "/gateway/v1/integrations/routes",
                json={"device_id": device, "interface_type": "http", "interface_id": "i" * 100_000},
                headers=owner,
            )
            assert route.status_code == 400 and "interface_id must be at most 255 characters" in route.text
            invite = await http.post(
                "/gateway/v1/shares/invites",
                json={"deviceId": device, "email": "x" * 330 + "@example.com"},
                headers=owner,
            )
            assert (invite.status_code, invite.json()) == (400, {"error": "invalid email"})
            token = owner["Authorization"]
    with daphne_server(DATABASE_URL=postgres_url) as server:  # a new process: the device is still there
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            listing = (await http.get("/gateway/v1/devices", headers={"Authorization": token})).json()["devices"]
            assert [(d["device_id"], d["display_name"]) for d in listing] == [(device, "pg box")]
