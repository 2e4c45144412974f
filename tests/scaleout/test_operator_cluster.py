"""The operator console and commands with STATE_BACKEND=redis (docs/operations.md, docs/scaling.md): two Procfile
processes sharing Redis and PostgreSQL. Process A holds the agent and the tunnel; the operator talks to process B,
or runs the commands straight against the shared database and Redis, and reaches A all the same."""

from __future__ import annotations

import asyncio
import json

import httpx

from gateway_site.operator import mint_login_token, mint_operator_token
from tests.helpers import clean_env, run_manage
from tests.operator_helpers import LiveUser

API = "/console/operator/api"


async def manage(cluster, *args: str):
    return await asyncio.to_thread(run_manage, *args, env=clean_env(**cluster.env))


def command_token(cluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_operator_token(issuer=cluster.env['PUBLIC_BASE_URL'])}"}


async def test_the_operator_reaches_every_process(cluster):
    async with (
        httpx.AsyncClient(base_url=cluster.url(0), timeout=20) as a,
        httpx.AsyncClient(base_url=cluster.url(1), timeout=20) as b,
    ):
        erin = await LiveUser(a, cluster.url(0), "erin@example.com", "dev_cluster_op01").start()
        try:
            # A session opened on A is the same session on B (its record lives in Redis); its link is used up there.
            token = mint_login_token(issuer=cluster.env["PUBLIC_BASE_URL"])
            opened = await a.post(f"{API}/session", json={"token": token})
            assert opened.status_code == 201
            cookie = opened.cookies["gw_operator"]
            assert (await b.post(f"{API}/session", json={"token": token})).status_code == 401
            b.cookies.set("gw_operator", cookie)
            devices = (await b.get(f"{API}/devices")).json()["devices"]
            assert [(d["device_id"], d["online"]) for d in devices if d["device_id"] == erin.device_id] == [
                (erin.device_id, True)
            ]

            # Webhooks through B reach the tunnel on A; B counts them and sees the tunnel.
            erin.http = b
            assert await erin.webhook() == 200
            (route,) = (await b.get(f"{API}/routes")).json()["routes"]
            assert route["tunnel_connected"] is True and route["answers_today"]["2xx"] == 1

            # Disabling on B refuses the webhook on A at once (the route's snapshot is shared).
            csrf = {"X-Operator-CSRF": opened.json()["csrf_token"]}
            assert (await b.post(f"{API}/routes/{erin.route_id}/disable", headers=csrf)).status_code == 200
            erin.http = a
            assert await erin.webhook() == 503
            assert (await a.post(f"{API}/routes/{erin.route_id}/enable", headers=command_token(cluster))).json()[
                "disabled"
            ] is False
            assert await erin.webhook() == 200

            # Disconnecting on B closes the socket A holds.
            answer = await b.post(f"{API}/devices/{erin.device_id}/disconnect", headers=command_token(cluster))
            assert answer.json()["disconnected"] is True
            code, _ = await erin.agent_closed()
            assert code == 1008
        finally:
            await erin.stop()


async def test_the_commands_straight_against_the_shared_state(cluster):
    async with httpx.AsyncClient(base_url=cluster.url(0), timeout=20) as a:
        fred = await LiveUser(a, cluster.url(0), "fred@example.com", "dev_cluster_op02").start(route=False)
        try:
            # STATE_BACKEND=redis with a shared database: `--via auto` works on the database and Redis directly.
            listed = await manage(cluster, "list_devices", "--json")
            assert listed.returncode == 0, listed.stderr
            devices = {d["device_id"]: d for d in json.loads(listed.stdout)["devices"]}
            assert devices[fred.device_id]["online"] is True
            kicked = await manage(cluster, "disconnect_agent", fred.device_id)
            assert kicked.stdout.strip() == f"disconnected the agent of {fred.device_id} (owner {fred.uid})"
            assert (await fred.agent_closed())[0] == 1008
            assert "operator=cmd-db:" in kicked.stderr and "action=disconnect_agent" in kicked.stderr

            await fred.connect_agent()
            revoked = await manage(cluster, "revoke_user", fred.uid, "--json")
            assert json.loads(revoked.stdout) | {"uid": ""} == {
                "uid": "",
                "refresh_tokens": 1,
                "grants": 0,
                "sessions": 0,
                "routes": 0,
                "agents": 1,
            }
            assert (await fred.agent_closed())[0] == 1008
        finally:
            await fred.stop()
