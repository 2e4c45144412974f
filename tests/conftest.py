"""Shared fixtures: the in-memory test database kept alive, and clean ephemeral state for every test."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches

from gateway_site import boot, boundedstore
from tests import state_mode

# The memdb test database disappears when its last connection closes; keep one open for the whole run.
boot.keep_alive(settings.DATABASES["default"]["TEST"]["NAME"])


def pytest_configure(config):
    config.addinivalue_line("markers", "memory_only(reason): depends on the in-process stores; skipped in Redis mode")
    state_mode.mode()  # a bad GATEWAY_TEST_STATE stops the run at once


def pytest_report_header(config):
    return f"state mode: {state_mode.mode()} ({state_mode.VARIABLE})"


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("memory_only")
    if marker is not None and state_mode.mode() == "redis":
        reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "depends on the in-process stores")
        pytest.skip(f"memory mode only: {reason}")


@pytest.fixture(autouse=True)
def _clean_state(request):
    """Every test starts on empty ephemeral state, in the run's state mode (tests/state_mode.py)."""
    for alias in settings.CACHES:
        caches[alias].clear()
    if state_mode.mode() == "redis":
        state_mode.use_redis(request.getfixturevalue("settings"), request.getfixturevalue("redis_url"))
        yield
        state_mode.forget_configured_state()
        return
    boundedstore.clear_all()  # the in-process key/value stores (gateway_site.kvstore) live in these
    from gateway_site.leases import MemoryLeases, lease_store
    from relay.session_store import session_store
    from relay.stores import MemoryPresenceStore, presence_store

    store: Any = session_store()
    if hasattr(store, "clear"):
        store.clear()
    presence = presence_store()
    if isinstance(presence, MemoryPresenceStore):
        presence.clear_all()
    leases = lease_store()
    if isinstance(leases, MemoryLeases):
        leases.clear()
    yield


def _real_service(start):
    """Enter `start()` (a context manager yielding a URL) for the whole run; a missing server program skips the tests
    that need it, or fails them in CI (tests.helpers.real_services_required)."""
    from tests.helpers import service_missing

    try:
        server = start()
        url = server.__enter__()
    except FileNotFoundError as missing:
        service_missing(missing)
    yield url
    server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def redis_url():
    """A real Redis server shared by the whole run (tests/redis_server.py); tests keep to key prefixes of their own."""
    from tests.redis_server import redis_server

    yield from _real_service(redis_server)


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server for the whole run (tests/postgres_server.py)."""
    from tests.postgres_server import postgres_server

    yield from _real_service(postgres_server)


@pytest.fixture
def configure(settings):
    """Change configuration values for one test: `configure(auth_mode="oidc", ...)` (GatewayConfig field names)."""

    def apply(**changes):
        settings.GATEWAY = dataclasses.replace(settings.GATEWAY, **changes)
        return settings.GATEWAY

    return apply


@pytest.fixture(autouse=True)
def _clean_relay():
    """No live agent sockets or channel-layer leftovers carry over between tests."""
    from channels.layers import channel_layers

    from relay.registry import agents

    agents._by_device.clear()
    if state_mode.mode() == "redis":  # the Redis layer was emptied with the rest of the test's Redis database
        yield
        return
    for layer in channel_layers.backends.values():
        memory: Any = layer  # the in-memory layer of the test settings
        memory.channels.clear()
        memory.groups.clear()
    yield
