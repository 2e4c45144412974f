"""The relay's edges when the shared state is down (docs/scaling.md "When Redis is down"): sessions live in a real
redis-server of each test's own (RedisSessionStore), which the test stops.

Every request that needs a session answers `503 {"error":"state_unavailable"}`; a stream ends (503 before its
headers, the end of its body after them); an agent socket closes with 1013 and gives back what it holds. Nothing
answers 500 and nothing is logged as a failure.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from gateway_site import outage
from gateway_site.asgi import application
from gateway_site.lifecycle import lifecycle
from gateway_site.sse import open_streams
from relay.registry import agents, streams
from relay.session_store import session_store
from relay.stores import presence
from tests.e2ee import ClientSide
from tests.helpers import service_missing
from tests.redis_server import RedisServer
from tests.relay.session_fixtures import DEVICE, OWNER, handshake, make_device, open_agent
from tests.relay_helpers import AgentSocket, Stream, bearer, http_client

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # These put one store on a Redis server of the test's own and stop it; in Redis mode the run's other stores and
    # channel layer would stay on the shared server. tests/scaleout/test_redis_outage.py covers a full Redis outage.
    pytest.mark.memory_only("stops a Redis server of its own under part of the state"),
]

STATE_UNAVAILABLE = {"error": "state_unavailable"}


@pytest.fixture
def redis(settings, configure):
    """Sessions in a Redis server of this test's own (started), as with STATE_BACKEND=redis."""
    try:
        server = RedisServer()
    except FileNotFoundError as missing:
        service_missing(missing)
    server.start()
    configure(state_backend="redis", redis_url=server.url)
    settings.GATEWAY_SESSION_STORE = "relay.redis_session_store.RedisSessionStore"
    session_store.cache_clear()
    yield server
    session_store.cache_clear()
    outage.outage.ended()  # the watcher thread of an outage this test started ends with it
    server.close()


@pytest.fixture
async def live(redis):
    keys = await make_device()
    agent = await open_agent()
    async with http_client(application) as http:
        client = await handshake(http, agent, keys)
        yield http, agent, keys, client
    await agent.close()


@pytest.fixture
def failures(caplog):
    """Asserts at the end that nothing was logged at ERROR or above (no 500, no traceback)."""
    caplog.set_level(logging.INFO)
    yield caplog
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def read_to_end(stream: Stream, timeout: float = 5) -> bytes:
    body = stream.buffer
    while True:
        body += await stream.chunk(timeout)
        if not stream.more:
            return body


def outage_started_lines(caplog) -> int:
    return sum("redis unavailable" in r.getMessage() for r in caplog.records)


async def test_requests_that_need_a_session_are_503_state_unavailable(live, failures, redis):
    http, _, _, client = live
    redis.stop()
    fresh = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), DEVICE)
    answers = [
        await http.post(
            f"/gateway/v1/sessions/{client.session_id}/messages", json=client.message("x", "m1"), headers=bearer(OWNER)
        ),
        await http.post(
            f"/gateway/v1/sessions/{fresh.session_id}/handshake/client-init",
            json=fresh.init_body(),
            headers=bearer(OWNER),
        ),
        await http.get(
            f"/gateway/v1/sessions/{client.session_id}/handshake/{client.handshake_id}", headers=bearer(OWNER)
        ),
    ]
    for answer in answers:
        assert (answer.status_code, answer.json()) == (503, STATE_UNAVAILABLE), answer.text
        assert answer.headers["retry-after"] == "1"
        assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert outage_started_lines(failures) == 1  # one line for the outage, not one per request
    # What the database alone answers still works.
    listing = await http.get("/gateway/v1/devices", headers=bearer(OWNER))
    assert listing.status_code == 200 and [d["device_id"] for d in listing.json()["devices"]] == [DEVICE]


async def test_a_stream_opened_while_redis_is_down_is_503_and_holds_nothing(live, failures, redis):
    _, _, _, client = live
    redis.stop()
    before = lifecycle.live_count()
    stream = Stream(application, f"/gateway/v1/sessions/{client.session_id}/events", OWNER)
    assert await stream.open() == 503
    assert await stream.body_json() == STATE_UNAVAILABLE
    await stream.io.wait(5)
    assert streams.of(client.session_id) == [] and await open_streams.count("owner-1") == 0
    assert lifecycle.live_count() == before


async def test_an_open_stream_ends_cleanly_when_redis_goes_down(live, failures, redis, settings):
    _, _, _, client = live
    settings.GATEWAY_SESSION_HEARTBEAT_SECONDS = 0.2  # the heartbeat re-reads the session from the store
    before = lifecycle.live_count()
    stream = Stream(application, f"/gateway/v1/sessions/{client.session_id}/events", OWNER)
    assert await stream.open() == 200
    await stream.read_until(b"}\n\n")  # the replayed acknowledgement
    assert await open_streams.count("owner-1") == 1
    redis.stop()
    await read_to_end(stream)  # the body ends: no 500, no cut connection
    await stream.io.wait(5)
    assert streams.of(client.session_id) == [] and await open_streams.count("owner-1") == 0
    assert lifecycle.live_count() == before


async def test_an_agent_frame_while_redis_is_down_closes_with_1013_and_the_device_goes_offline(live, failures, redis):
    _, agent, keys, client = live
    assert await presence.get(DEVICE) is not None
    redis.stop()
    await agent.send(keys.reply(client.session_id, "session.progress", "m1", {"status": "running"}))
    closed = await agent.recv_raw()
    assert (closed["type"], closed["code"]) == ("websocket.close", 1013)
    assert await presence.get(DEVICE) is None and agents.get(DEVICE) is None


async def test_an_agent_connecting_while_redis_is_down_is_closed_with_1013_and_holds_nothing(redis, failures):
    await make_device()
    redis.stop()
    before = lifecycle.live_count()
    agent = AgentSocket(application, OWNER, DEVICE)
    assert await agent.connect()  # admission reads the database only
    frames = [await agent.recv_raw() for _ in range(3)]  # gateway.connected, transport.init, then the close
    assert [f["type"] for f in frames] == ["websocket.send", "websocket.send", "websocket.close"]
    assert frames[2]["code"] == 1013  # pending handshakes could not be read
    assert await presence.get(DEVICE) is None and agents.get(DEVICE) is None and lifecycle.live_count() == before
    await agent.close()


async def test_sessions_work_again_once_redis_is_back(live, failures, redis):
    http, agent, keys, client = live
    redis.stop()
    answer = await http.post(
        f"/gateway/v1/sessions/{client.session_id}/messages", json=client.message("x", "m1"), headers=bearer(OWNER)
    )
    assert answer.status_code == 503
    redis.start()  # empty: the sessions went with the old server
    await agent.close()
    agent = await open_agent()
    try:
        again = await handshake(http, agent, keys)
        sent = await http.post(
            f"/gateway/v1/sessions/{again.session_id}/messages", json=again.message("y", "m2"), headers=bearer(OWNER)
        )
        assert sent.status_code == 202, sent.text
        assert (await agent.recv())["type"] == "session.message"
    finally:
        await agent.close()
