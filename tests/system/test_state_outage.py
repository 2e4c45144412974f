"""Redis outages below the edges (docs/scaling.md "When Redis is down"): what counts as one, the two log lines of
each, readiness, the bounds and the recovery of the Redis clients and of the channels_redis layer, against real
redis-servers; and memory mode never loading the `redis` package."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest
from channels_redis.core import RedisChannelLayer
from redis import exceptions as redis_errors

from gateway_site import outage, redis_state
from gateway_site.errors import StateUnavailable
from tests.helpers import clean_env, free_port, run_manage, service_missing
from tests.redis_server import RedisServer

STATE_UNAVAILABLE = {"error": "state_unavailable"}


@pytest.fixture
def redis():
    """A Redis server of this test's own, which it may stop, start, pause and resume."""
    try:
        server = RedisServer()
    except FileNotFoundError as missing:
        service_missing(missing)
    server.start()
    yield server
    server.close()


@pytest.fixture
def outage_log(caplog):
    caplog.set_level(logging.INFO, logger="gateway.state")
    yield caplog
    outage.outage.ended()


def lines(caplog, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


def dead_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


@pytest.mark.parametrize(
    "error",
    [redis_errors.ConnectionError("refused"), redis_errors.TimeoutError("slow"), redis_errors.BusyLoadingError("x")],
)
def test_redis_connection_failures_and_timeouts_are_outages(error, outage_log):
    assert outage.is_outage(error)
    unavailable = outage.unavailable(error)
    assert isinstance(unavailable, StateUnavailable)
    assert (unavailable.status, unavailable.body(), unavailable.headers) == (
        503,
        STATE_UNAVAILABLE,
        {"Retry-After": "1"},
    )


@pytest.mark.parametrize(
    "error",
    [ConnectionError("not redis"), TimeoutError(), OSError(), ValueError(), redis_errors.ResponseError("WRONGTYPE")],
)
def test_other_failures_are_not_outages(error, outage_log):
    assert not outage.is_outage(error)
    assert outage.unavailable(error) is None
    assert not outage.outage.down and lines(outage_log, "redis unavailable") == 0


def test_an_outage_is_logged_once_when_it_starts_and_once_when_redis_answers_again(redis, configure, outage_log):
    configure(state_backend="redis", redis_url=redis.url)
    redis.stop()
    for _ in range(5):
        assert outage.unavailable(redis_errors.ConnectionError("refused")) is not None
    assert outage.outage.down and lines(outage_log, "redis unavailable") == 1
    time.sleep(1.5)  # the watcher keeps pinging a stopped server: nothing more is logged
    assert lines(outage_log, "redis unavailable") == 1 and lines(outage_log, "redis available again") == 0

    redis.start()
    deadline = time.monotonic() + 10
    while outage.outage.down:  # the watcher notices by itself
        assert time.monotonic() < deadline, "the recovery was not noticed"
        time.sleep(0.05)
    assert lines(outage_log, "redis available again") == 1

    outage.unavailable(redis_errors.TimeoutError("again"))  # a new outage is a new line
    assert lines(outage_log, "redis unavailable") == 2


@pytest.mark.django_db
def test_readiness_in_redis_mode_pings_redis(client, redis, configure, outage_log):
    configure(state_backend="redis", redis_url=redis.url)
    assert client.get("/readyz").json()["status"] == "ready"

    redis.stop()
    started = time.monotonic()
    answer = client.get("/readyz")
    assert time.monotonic() - started < redis_state.READY_PING_TIMEOUT_SECONDS + 2
    assert answer.status_code == 503
    assert {k: answer.json()[k] for k in ("status", "reason", "state_backend")} == {
        "status": "not_ready",
        "reason": "redis_unavailable",
        "state_backend": "redis",
    }
    assert client.get("/healthz").status_code == 200  # liveness is not readiness

    redis.start()
    assert client.get("/readyz").status_code == 200
    assert not outage.outage.down  # a successful ping ends the outage too


@pytest.mark.django_db
def test_readiness_gives_up_on_a_frozen_redis_within_its_bound(client, redis, configure, outage_log):
    configure(state_backend="redis", redis_url=redis.url)
    redis.pause()
    try:
        started = time.monotonic()
        answer = client.get("/readyz")
        elapsed = time.monotonic() - started
    finally:
        redis.resume()
    assert (answer.status_code, answer.json()["reason"]) == (503, "redis_unavailable")
    assert redis_state.READY_PING_TIMEOUT_SECONDS <= elapsed < redis_state.READY_PING_TIMEOUT_SECONDS + 2


@pytest.mark.django_db
def test_readiness_in_memory_mode_never_asks_redis(client, configure):
    configure(redis_url=dead_url())  # set but unused: STATE_BACKEND=memory
    assert client.get("/readyz").status_code == 200


async def test_a_client_fails_fast_while_redis_is_stopped_and_works_again_once_it_is_back(redis):
    key = f"test:{uuid.uuid4().hex}:k"
    store = redis_state.client(redis.url)
    await store.set(key, "1")
    redis.stop()
    started = time.monotonic()
    with pytest.raises(redis_errors.ConnectionError):
        await store.get(key)
    assert time.monotonic() - started < 2 * redis_state.CONNECT_TIMEOUT_SECONDS
    redis.start()
    assert redis_state.client(redis.url) is store
    assert await store.set(key, "2") and await store.get(key) == "2"  # the same client, no restart


async def test_a_command_to_a_frozen_redis_times_out_within_its_bound(redis, monkeypatch):
    monkeypatch.setattr(redis_state, "COMMAND_TIMEOUT_SECONDS", 0.5)  # read when this loop's client is made
    store = redis_state.client(redis.url)
    await store.ping()
    redis.pause()
    try:
        started = time.monotonic()
        with pytest.raises(redis_errors.TimeoutError):
            await store.get("test:frozen")
        elapsed = time.monotonic() - started
    finally:
        redis.resume()
    assert elapsed < 0.5 + 1.5  # one command timeout: a timeout is not repeated
    assert await store.ping()


async def test_the_channels_redis_layer_fails_within_its_bound_and_recovers(redis):
    layer = RedisChannelLayer(hosts=[redis_state.layer_host(redis.url)], prefix=f"test:{uuid.uuid4().hex}:")
    channel = await layer.new_channel()
    await layer.group_add("outage", channel)
    await layer.group_send("outage", {"type": "before"})
    assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "before"

    redis.stop()
    started = time.monotonic()
    with pytest.raises(redis_errors.ConnectionError):
        await layer.receive(channel)
    with pytest.raises(redis_errors.ConnectionError):
        await layer.send(channel, {"type": "lost"})
    assert time.monotonic() - started < 2 * redis_state.CONNECT_TIMEOUT_SECONDS

    redis.start()  # empty: group memberships went with the old server, so the consumer joins again
    await layer.group_add("outage", channel)
    await layer.group_send("outage", {"type": "after"})
    assert (await asyncio.wait_for(layer.receive(channel), 5))["type"] == "after"
    await layer.close_pools()


def test_memory_mode_never_loads_the_redis_package():
    script = (
        "import sys, gateway_site.asgi; from django.test import Client; "
        "from gateway_site import outage; outage.unavailable(ConnectionError()); "
        "assert Client().get('/readyz').status_code == 200; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'channels_redis')))"
    )
    result = run_manage("shell", "--no-imports", "-c", script, env=clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_deploy_check_is_clean_for_several_processes_in_redis_mode(tmp_path):
    env = clean_env(
        JWT_SIGNING_KEY="a-real-production-signing-key-0123456789abcdef",
        PUBLIC_BASE_URL="https://gateway.example.com",
        AUTH_MODE="oidc",
        OIDC_ISSUER_URL="https://accounts.example.com",
        OIDC_CLIENT_ID="gateway",
        DEMO_AUTH_DISABLED="true",
        STATE_BACKEND="redis",
        REDIS_URL=dead_url(),  # the check does not connect: it needs no network
        DATABASE_URL=f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        WEB_CONCURRENCY="4",
    )
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
