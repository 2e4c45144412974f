"""The operator management commands (docs/operations.md): against a running memory-only Daphne gateway over its
operator API, and directly against a shared SQLite file database; tables, `--json`, what changed, clear failures
with a non-zero exit, and the audit lines."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest

from tests.helpers import clean_env, daphne_server, free_port, run_manage
from tests.operator_helpers import LiveUser


async def manage(*args: str, **env: str):
    """Run a management command in a subprocess without blocking the event loop (the sockets stay served)."""
    return await asyncio.to_thread(run_manage, *args, env=clean_env(**env))


@pytest.fixture(scope="module")
def gateway():
    with daphne_server() as server:
        yield server


async def test_every_command_against_a_running_memory_only_gateway(gateway):
    url = gateway.base_url
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        alice = await LiveUser(http, url, "alice@example.com", "dev_ops_alice01").start()
        try:
            assert await alice.webhook() == 200

            users = await manage("list_users", "--url", url)
            assert users.returncode == 0, users.stderr
            assert re.search(
                rf"^{re.escape(alice.uid)}\s+alice@example.com\s+no\s+1\s+1\s+\d{{4}}-", users.stdout, re.M
            )
            listed = json.loads((await manage("list_users", "--url", url, "--json")).stdout)
            assert alice.uid in [u["uid"] for u in listed["users"]]

            devices = json.loads((await manage("list_devices", "--url", url, "--json")).stdout)["devices"]
            (device,) = [d for d in devices if d["device_id"] == alice.device_id]
            assert device["online"] is True and device["owner_uid"] == alice.uid

            routes = await manage("list_routes", "--url", url)
            line = next(row for row in routes.stdout.splitlines() if row.startswith(alice.route_id))
            # buffered 0, recorded 1 (docs/protocol/webhooks.md §2-3), then today's 2xx, 4xx, 5xx, 429
            assert line.split()[2:] == ["active", "no", "yes", line.split()[5], "0", "1", "1", "0", "0", "0"]

            disabled = await manage("disable_route", alice.route_id, "--url", url)
            assert disabled.stdout.strip() == f"disabled {alice.route_id} (owner {alice.uid})"
            assert await alice.webhook() == 503
            enabled = await manage("enable_route", alice.route_id, "--url", url, "--json")
            assert json.loads(enabled.stdout) == {"route_id": alice.route_id, "owner_uid": alice.uid, "disabled": False}
            assert await alice.webhook() == 200

            kicked = await manage("disconnect_agent", alice.device_id, "--url", url)
            assert kicked.stdout.strip() == f"disconnected the agent of {alice.device_id} (owner {alice.uid})"
            code, reason = await alice.agent_closed()
            assert code == 1008 and reason in ("", "disconnected_by_operator")  # Daphne drops close reasons
            again = await manage("disconnect_agent", alice.device_id, "--url", url)
            assert again.returncode == 0 and "has no agent connected" in again.stdout

            revoked = await manage("revoke_user", alice.uid, "--url", url)
            assert revoked.returncode == 0, revoked.stderr
            assert revoked.stdout.startswith(
                f"revoked {alice.uid}: 1 refresh token(s), 0 grant(s), 0 session(s), 1 route"
            )
            refreshed = await http.post(
                "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": alice.tokens["refresh_token"]}
            )
            assert refreshed.status_code == 400
            assert await alice.webhook() == 503
        finally:
            await alice.stop()

    log = gateway.log()
    for action, target in [
        ("disable_route", alice.route_id),
        ("enable_route", alice.route_id),
        ("disconnect_agent", alice.device_id),
        ("revoke_user", alice.uid),
    ]:
        line = rf"operator=cmd-[0-9a-f]{{12}} action={action} target={re.escape(target)} time="
        assert re.search(rf"gateway\.audit operator action {line}", log), action
    assert alice.tokens["access_token"] not in log and alice.tokens["refresh_token"] not in log
    assert "alice@example.com" not in "\n".join(line for line in log.splitlines() if "gateway.audit" in line)


async def test_failures_exit_non_zero_with_one_clear_line(gateway):
    url = gateway.base_url
    unknown_route = "rt_" + "0" * 32
    refused = "CommandError: the gateway refused: 404 "
    cases = [
        (("disable_route", unknown_route, "--url", url), f"{refused}unknown route: {unknown_route}"),
        (("enable_route", "rt_bad"), "CommandError: malformed route id: rt_bad (expected rt_ and 32 hex digits)"),
        (("disconnect_agent", "dev_nobody001", "--url", url), f"{refused}unknown device: dev_nobody001"),
        (("revoke_user", "nobody", "--url", url), f"{refused}unknown user: nobody"),
        (("list_users", "--via", "db"), "CommandError: --via db needs a persistent DATABASE_URL: the in-memory "
         "database lives inside the server process"),
    ]  # fmt: skip
    for args, message in cases:
        result = await manage(*args)
        assert (result.returncode, result.stderr.strip()) == (1, message), args
    unreachable = await manage("list_devices", "--url", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1 and "cannot reach the gateway" in unreachable.stderr
    wrong_key = await manage("list_routes", "--url", url, JWT_SIGNING_KEY="some-other-signing-key-of-enough-length")
    assert wrong_key.returncode == 1 and "401 invalid operator token" in wrong_key.stderr


async def test_operator_login_prints_a_link_that_opens_a_session_once(gateway):
    url = gateway.base_url
    # The command's own PORT and PUBLIC_BASE_URL differ from the server's: it signs for the server's issuer.
    result = await manage("operator_login", "--url", url, PORT="9999", PUBLIC_BASE_URL="https://elsewhere.example.com")
    assert result.returncode == 0, result.stderr
    link, note = result.stdout.splitlines()
    assert link.startswith(f"{url}/console/operator/login#") and "valid until" in note
    token = link.split("#", 1)[1]
    default = json.loads((await manage("operator_login", "--json", PORT=str(gateway.port))).stdout)
    assert default["url"].startswith("http://localhost:8080/console/operator/login#")  # the server's public address
    async with httpx.AsyncClient(base_url=url) as http:
        opened = await http.post("/console/operator/api/session", json={"token": token})
        assert opened.status_code == 201
        assert (await http.get("/console/operator/api/overview")).status_code == 200
        reused = await http.post("/console/operator/api/session", json={"token": token})
        assert reused.json() == {"error": "sign-in link already used"}
    assert token not in gateway.log()


async def test_the_commands_directly_against_a_shared_sqlite_file(tmp_path):
    database = f"sqlite:///{tmp_path / 'gateway.sqlite3'}"
    migrated = await manage("migrate", "-v", "0", DATABASE_URL=database)
    assert migrated.returncode == 0, migrated.stderr
    with daphne_server(DATABASE_URL=database) as server:
        url = server.base_url
        async with httpx.AsyncClient(base_url=url, timeout=20) as http:
            bob = await LiveUser(http, url, "bob@example.com", "dev_ops_bob0001").start()
            try:
                db = {"DATABASE_URL": database}
                users = await manage("list_users", "--via", "db", **db)
                assert users.returncode == 0, users.stderr
                assert re.search(rf"^{re.escape(bob.uid)}\s+bob@example.com\s+no\s+1\s", users.stdout, re.M)
                devices = json.loads((await manage("list_devices", "--via", "db", "--json", **db)).stdout)["devices"]
                # The live state (who is online) lives in the server process: from the database alone it is unknown.
                assert [(d["device_id"], d["online"]) for d in devices] == [(bob.device_id, False)]
                # `--via auto` knows that and asks the running server, which does know.
                live = json.loads((await manage("list_devices", "--json", "--url", url, **db)).stdout)["devices"]
                assert [(d["device_id"], d["online"]) for d in live] == [(bob.device_id, True)]
                routes = await manage("list_routes", "--via", "db", **db)
                assert bob.route_id in routes.stdout

                disabled = await manage("disable_route", bob.route_id, "--via", "db", **db)
                assert disabled.stdout.strip() == f"disabled {bob.route_id} (owner {bob.uid})"
                audit_line = rf"operator action operator=cmd-db:\S+ action=disable_route target={bob.route_id}"
                assert re.search(audit_line, disabled.stderr)

                async def answers(status: int) -> bool:
                    return await bob.webhook() == status

                await until(lambda: answers(503))  # the server's snapshot of the route lives 5 s at most
                await manage("enable_route", bob.route_id, "--via", "db", **db)
                await until(lambda: answers(200))

                revoked = await manage("revoke_user", bob.uid, "--via", "db", "--json", **db)
                assert json.loads(revoked.stdout)["refresh_tokens"] == 1
                assert "action=revoke_user" in revoked.stderr
                refreshed = await http.post(
                    "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": bob.tokens["refresh_token"]}
                )
                assert refreshed.status_code == 400
                missing = await manage("disable_route", "rt_" + "1" * 32, "--via", "db", **db)
                assert missing.returncode == 1
                assert missing.stderr.strip() == f"CommandError: unknown route: rt_{'1' * 32}"
            finally:
                await bob.stop()


async def until(condition, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)
