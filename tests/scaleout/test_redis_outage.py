"""Redis mode when Redis goes away (docs/scaling.md "When Redis is down"), against a real gateway process and a real
redis-server of this module's own, which the tests stop and start again on the same port, or freeze.

While Redis is down: `/readyz` is 503 `redis_unavailable`; whatever needs shared state answers 503
`{"error":"state_unavailable"}` within a bound (never 500, never a hang); open sockets close with 1013 and open
streams end cleanly; what lives in the database alone (devices, identity keys, grants) is still served and intact.
Once Redis is back the same process is ready again by itself and sessions work end to end. Each outage is logged
once when it starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx
import pytest
import websockets

from gateway_site import redis_state
from tests.e2ee import AgentSide, ClientSide, open_frame
from tests.helpers import LiveServer, clean_env, daphne_server, run_manage, service_missing
from tests.oauth_helpers import live_sign_in
from tests.redis_server import RedisServer

T = TypeVar("T")

# A stopped Redis refuses connections at once; this leaves room for a loaded machine.
STOPPED_BOUND_SECONDS = 5.0
# A frozen Redis accepts connections and answers nothing: readiness gives up after its 1 s ping, a request after one
# command timeout, which is never repeated (gateway_site.redis_state); the rest is room for a loaded machine.
FROZEN_READY_BOUND_SECONDS = redis_state.READY_PING_TIMEOUT_SECONDS + 2.0
FROZEN_REQUEST_BOUND_SECONDS = redis_state.COMMAND_TIMEOUT_SECONDS + 3.0
RECOVERY_SECONDS = 15.0
STATE_UNAVAILABLE = {"error": "state_unavailable"}
DOWN_LINE = "redis unavailable"
UP_LINE = "redis available again"


@pytest.fixture(scope="module")
def redis():
    try:
        server = RedisServer()
    except FileNotFoundError as missing:
        service_missing(missing)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def gateway(redis, tmp_path_factory):
    database = tmp_path_factory.mktemp("outage") / "gateway.sqlite3"
    env = {"STATE_BACKEND": "redis", "REDIS_URL": redis.url, "DATABASE_URL": f"sqlite:///{database}"}
    env["PUBLIC_BASE_URL"] = "http://gateway.test"  # one process: any one address will do as the issuer
    migrated = run_manage("migrate", "--no-input", env=clean_env(**env), timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    with daphne_server(**env) as server:
        yield server


@pytest.fixture
async def http(gateway):
    async with httpx.AsyncClient(base_url=gateway.base_url, timeout=30) as client:
        yield client


@pytest.fixture
def running(redis):
    """Whatever a test did to Redis, it runs again afterwards."""
    yield redis
    if redis.process is None:
        redis.start()
    else:
        redis.resume()


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """The result of `awaitable`, which must arrive within `seconds`."""
    started = time.monotonic()
    result = await asyncio.wait_for(awaitable, timeout=seconds + 5)
    elapsed = time.monotonic() - started
    assert elapsed <= seconds, f"took {elapsed:.2f}s, more than {seconds}s"
    return result


async def eventually(check: Any, seconds: float = RECOVERY_SECONDS) -> Any:
    """Poll the async `check` until it returns something truthy, for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {seconds}s"
        await asyncio.sleep(0.1)


async def ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


def outage_lines(server: LiveServer, since: int) -> tuple[int, int]:
    """How many outage-start and outage-end lines the server logged after the first `since` characters."""
    lines = server.log()[since:].splitlines()
    return sum(DOWN_LINE in line for line in lines), sum(UP_LINE in line for line in lines)


def assert_no_failure_logged(server: LiveServer, since: int) -> None:
    text = server.log()[since:]
    assert "Traceback" not in text and "status=500" not in text and " ERROR " not in text, text[-3000:]


async def sign_in(http: httpx.AsyncClient, email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await live_sign_in(http, email, 'profile email device')}"}


async def register_device(http: httpx.AsyncClient, owner: dict[str, str]) -> tuple[str, AgentSide]:
    device = "dev_outage_" + uuid.uuid4().hex[:10]
    keys = AgentSide.new()
    body = {"algorithm": "ed25519", "public_key": keys.identity_b64, "display_name": "outage box"}
    put = await http.put(f"/gateway/v1/devices/{device}/identity-key", json=body, headers=owner)
    assert put.status_code == 204, put.text
    return device, keys


class Agent:
    """The agent simulator on a live socket: acks every handshake over the socket and answers each message."""

    def __init__(self, ws: Any, keys: AgentSide) -> None:
        self.ws, self.keys = ws, keys
        self.task = asyncio.ensure_future(self._run())

    @classmethod
    async def connect(cls, server: LiveServer, device: str, owner: dict[str, str], keys: AgentSide) -> Agent:
        url = f"ws://127.0.0.1:{server.port}/gateway/v1/agent/connect?device_id={device}"
        ws = await websockets.connect(url, additional_headers={**owner, "X-Device-Id": device})
        assert json.loads(await ws.recv())["type"] == "gateway.connected"
        return cls(ws, keys)

    async def _run(self) -> None:
        async for text in self.ws:
            frame = json.loads(text)
            if frame["type"] == "session.handshake.request":
                ack = {"type": "session.handshake.ack", "status": "ok", "session_id": frame["session_id"]}
                await self.ws.send(json.dumps({**ack, **self.keys.ack(frame)}))
            elif frame["type"] == "session.message":
                prompt = self.keys.read(frame)["prompt"]
                sid, mid = frame["session_id"], frame["message_id"]
                reply = self.keys.reply(sid, "session.result", mid, {"result": f"echo: {prompt}"})
                await self.ws.send(json.dumps(reply))

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self.task, return_exceptions=True)


class Stream:
    """A session event stream read in the background; `finished` is set when its body ends without error."""

    def __init__(self, http: httpx.AsyncClient, session_id: str, headers: dict[str, str]) -> None:
        self.http, self.session_id, self.headers = http, session_id, headers
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.opened = asyncio.Event()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        path = f"/gateway/v1/sessions/{self.session_id}/events"
        async with self.http.stream("GET", path, headers=self.headers) as response:
            assert response.status_code == 200
            self.opened.set()
            buffer = ""
            async for text in response.aiter_text():
                buffer += text
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
                    if "data" in fields:
                        await self.events.put(json.loads(fields["data"]))

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.events.get(), timeout=10)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def open_session(http: httpx.AsyncClient, owner: dict[str, str], device: str, keys: AgentSide) -> ClientSide:
    """client-init, then poll the handshake until the agent acknowledged it; the client derives its keys."""
    client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
    init = await http.post(
        f"/gateway/v1/sessions/{client.session_id}/handshake/client-init", json=client.init_body(), headers=owner
    )
    assert init.status_code == 202, init.text

    async def acknowledged() -> dict[str, Any] | None:
        path = f"/gateway/v1/sessions/{client.session_id}/handshake/{client.handshake_id}"
        shown = (await http.get(path, headers=owner)).json()
        return shown if shown["status"] == "agent_acknowledged" else None

    client.complete(await eventually(acknowledged, 10), keys.identity_b64)
    return client


async def relay_one(http: httpx.AsyncClient, owner: dict[str, str], client: ClientSide, prompt: str) -> None:
    """One encrypted message to the agent, and its encrypted answer back on the session's event stream."""
    stream = Stream(http, client.session_id, owner)
    try:
        await asyncio.wait_for(stream.opened.wait(), timeout=10)
        sent = await http.post(
            f"/gateway/v1/sessions/{client.session_id}/messages",
            json=client.message(prompt, "msg_" + uuid.uuid4().hex[:8]),
            headers=owner,
        )
        assert sent.status_code == 202, sent.text
        while True:
            event = await stream.next()
            if event.get("type") == "session.result":
                break
        assert json.loads(open_frame(client.a2c, event, "agent_to_client"))["result"] == f"echo: {prompt}"
    finally:
        await stream.stop()


async def test_a_stopped_redis_is_503_within_a_bound_and_the_gateway_recovers_by_itself(gateway, http, running):
    redis = running
    assert await eventually(lambda: ready(http))
    owner = await sign_in(http, "outage-owner@example.com")
    guest = await sign_in(http, "outage-guest@example.com")
    device, keys = await register_device(http, owner)
    invite = await http.post(
        "/gateway/v1/shares/invites", json={"deviceId": device, "email": "outage-guest@example.com"}, headers=owner
    )
    accepted = await http.post(
        "/gateway/v1/shares/invites/accept", json={"token": invite.json()["inviteUrl"].rsplit("/", 1)[1]}, headers=guest
    )
    assert accepted.status_code == 200, accepted.text
    agent = await Agent.connect(gateway, device, owner, keys)
    client = await open_session(http, owner, device, keys)
    await relay_one(http, owner, client, "before the outage")
    stream = Stream(http, client.session_id, owner)
    await asyncio.wait_for(stream.opened.wait(), timeout=10)
    log_mark = len(gateway.log())

    redis.stop()

    # Readiness says why; liveness does not change.
    readiness = await within(STOPPED_BOUND_SECONDS, http.get("/readyz"))
    assert readiness.status_code == 503
    assert {k: readiness.json()[k] for k in ("status", "reason", "state_backend")} == {
        "status": "not_ready",
        "reason": "redis_unavailable",
        "state_backend": "redis",
    }
    assert (await http.get("/healthz")).status_code == 200

    # The open stream ends cleanly and the agent's socket closes with 1013 (try again later).
    await within(STOPPED_BOUND_SECONDS, stream.task)
    await within(STOPPED_BOUND_SECONDS, agent.ws.wait_closed())
    assert agent.ws.close_code == 1013
    await agent.close()

    # Everything that needs shared state: 503 state_unavailable in JSON, at once.
    fresh = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
    base = "/gateway/v1/sessions"
    refusals = [
        http.post(f"{base}/{fresh.session_id}/handshake/client-init", json=fresh.init_body(), headers=owner),
        http.get(f"{base}/{client.session_id}/handshake/{client.handshake_id}", headers=owner),
        http.post(f"{base}/{client.session_id}/messages", json=client.message("lost", "msg_lost"), headers=owner),
        http.get(f"{base}/{client.session_id}/events", headers=owner),
    ]
    for request in refusals:
        answer = await within(STOPPED_BOUND_SECONDS, request)
        assert (answer.status_code, answer.json()) == (503, STATE_UNAVAILABLE), answer.text
        assert answer.headers["content-type"] == "application/json; charset=utf-8"

    # A new agent socket is not kept: refused, or closed with 1013 right after the upgrade.
    url = f"ws://127.0.0.1:{gateway.port}/gateway/v1/agent/connect?device_id={device}"
    try:
        late = await within(
            STOPPED_BOUND_SECONDS, websockets.connect(url, additional_headers={**owner, "X-Device-Id": device})
        )
    except websockets.InvalidStatus as refused:
        assert refused.response.status_code in (403, 503)
    else:
        await within(STOPPED_BOUND_SECONDS, late.wait_closed())
        assert late.close_code == 1013

    # What lives in the database is served as before, and the agent is no longer listed online.
    listing = await within(STOPPED_BOUND_SECONDS, http.get("/gateway/v1/devices", headers=owner))
    assert listing.status_code == 200
    assert [(d["device_id"], d["status"]) for d in listing.json()["devices"]] == [(device, "offline")]
    key = await http.get(f"/gateway/v1/devices/{device}/identity-key", headers=owner)
    assert (key.status_code, key.json()["public_key"]) == (200, keys.identity_b64)

    redis.start()  # same port, empty: Redis kept nothing on disk

    assert await eventually(lambda: ready(http))
    agent = await Agent.connect(gateway, device, owner, keys)
    try:
        again = await open_session(http, owner, device, keys)
        await relay_one(http, owner, again, "after the outage")
    finally:
        await agent.close()
    shared = (await http.get("/gateway/v1/devices", headers=guest)).json()["devices"]
    assert [d["device_id"] for d in shared] == [device]  # the grant is intact

    assert await eventually(lambda: asyncio.sleep(0, outage_lines(gateway, log_mark) == (1, 1)))
    assert_no_failure_logged(gateway, log_mark)


async def test_a_frozen_redis_is_503_within_a_bound_not_a_hang(gateway, http, running):
    redis = running
    assert await eventually(lambda: ready(http))
    owner = await sign_in(http, "frozen-owner@example.com")
    device, _ = await register_device(http, owner)
    log_mark = len(gateway.log())

    redis.pause()

    readiness = await within(FROZEN_READY_BOUND_SECONDS, http.get("/readyz"))
    assert (readiness.status_code, readiness.json()["reason"]) == (503, "redis_unavailable")
    fresh = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device)
    init = await within(
        FROZEN_REQUEST_BOUND_SECONDS,
        http.post(
            f"/gateway/v1/sessions/{fresh.session_id}/handshake/client-init", json=fresh.init_body(), headers=owner
        ),
    )
    assert (init.status_code, init.json()) == (503, STATE_UNAVAILABLE)
    # The listing reads presence too: it waits for the command timeout, then lists from the database, offline.
    listing = await within(FROZEN_REQUEST_BOUND_SECONDS, http.get("/gateway/v1/devices", headers=owner))
    assert [(d["device_id"], d["status"]) for d in listing.json()["devices"]] == [(device, "offline")]

    redis.resume()

    assert await eventually(lambda: ready(http))
    init = await http.post(
        f"/gateway/v1/sessions/{fresh.session_id}/handshake/client-init", json=fresh.init_body(), headers=owner
    )
    assert init.status_code == 202, init.text
    assert await eventually(lambda: asyncio.sleep(0, outage_lines(gateway, log_mark) == (1, 1)))
    assert_no_failure_logged(gateway, log_mark)
