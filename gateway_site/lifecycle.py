"""Readiness and graceful shutdown.

Readiness (`GET /readyz`): the database answers a query and every migration is applied, and the process is not
shutting down. Once the migrations were seen applied they stay applied for the life of the process, so that part is
checked only until it first succeeds.

Shutdown: the ASGI servers we run under (Daphne, uvicorn) install their own SIGTERM handlers when they start. On the
first ASGI event this module puts its handler in front of the server's. On SIGTERM it turns the process not-ready,
asks every live socket and stream of this process to end (agent and tunnel sockets close with 1012, "service
restart", so clients reconnect elsewhere or later; SSE streams end), waits until they have gone or
`SHUTDOWN_TIMEOUT_SECONDS` passed, keeps answering (not ready) for `SHUTDOWN_DRAIN_SECONDS` more so a load balancer
notices, then hands the signal to the server, which stops. A second SIGTERM skips the wait.

With several processes (STATE_BACKEND=redis), the first ASGI event also starts this process's inbox
(gateway_site.nodes), and the drain stops it last, once the connections it served are gone. The first event starts
the metrics history's sampler too (gateway_site.metrics_history).

Live connections register here with `track()`; each must handle the channel-layer message `{"type":
"gateway.shutdown"}` sent to its own channel by ending itself (it runs in the connection's own task).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings

from gateway_site import metrics_history, nodes, transport

logger = logging.getLogger("gateway")

SHUTDOWN_MESSAGE = {"type": "gateway.shutdown"}
CLOSE_SERVICE_RESTART = 1012


class LiveConnection(Protocol):
    channel_layer: Any
    channel_name: str


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str = ""


class Lifecycle:
    def __init__(self) -> None:
        self.shutting_down = False
        self._live: set[LiveConnection] = set()
        self._migrations_applied = False
        self.signal_handler_installed = False
        self._gone: asyncio.Event | None = None

    # -- live connections --------------------------------------------------------------------------------------------

    def track(self, connection: LiveConnection) -> None:
        self._live.add(connection)

    def untrack(self, connection: LiveConnection) -> None:
        self._live.discard(connection)
        if not self._live and self._gone is not None:
            self._gone.set()

    def live_count(self) -> int:
        return len(self._live)

    def live_connections(self) -> tuple[LiveConnection, ...]:
        """The sockets and streams open now (gateway_site.metrics counts the streams among them by kind)."""
        return tuple(self._live)

    # -- readiness ---------------------------------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        """Synchronous (database access): call from a sync view or through sync_to_async."""
        if self.shutting_down:
            return Readiness(False, "shutting down")
        from django.db import DatabaseError, connection

        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError as exc:
            return Readiness(False, f"database unavailable: {type(exc).__name__}")
        if not self._migrations_applied:
            pending = pending_migrations()
            if pending:
                return Readiness(False, f"{pending} unapplied migration(s): run manage.py migrate")
            self._migrations_applied = True
        return Readiness(True)

    # -- shutdown ----------------------------------------------------------------------------------------------------

    def install_signal_handler(self, loop: asyncio.AbstractEventLoop) -> None:
        """Put our SIGTERM handler in front of the server's (once, from the main thread only)."""
        if self.signal_handler_installed:
            return
        self.signal_handler_installed = True  # decided once: a server running in another thread keeps its own
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        state = {"draining": False}

        def hand_over(signum: int) -> None:
            if callable(previous):
                previous(signum, None)
            else:  # SIG_DFL / SIG_IGN: let the default disposition act
                signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
                os.kill(os.getpid(), signum)

        def on_sigterm(signum: int, frame: Any) -> None:
            if loop.is_closed():  # the loop we were installed from has ended: nothing left to drain
                hand_over(signum)
                return
            if state["draining"]:
                loop.call_soon_threadsafe(hand_over, signum)
                return
            state["draining"] = True
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._drain_then(lambda: hand_over(signum))))

        signal.signal(signal.SIGTERM, on_sigterm)

    async def _drain_then(self, then: Callable[[], None]) -> None:
        try:
            await self.drain()
        finally:
            then()

    async def drain(self) -> None:
        config = settings.GATEWAY
        self.shutting_down = True
        started = time.monotonic()
        logger.info("shutdown: closing live connections", extra={"fields": {"connections": len(self._live)}})
        self._gone = asyncio.Event()
        if not self._live:
            self._gone.set()
        for connection in list(self._live):
            with contextlib.suppress(Exception):
                await connection.channel_layer.send(connection.channel_name, dict(SHUTDOWN_MESSAGE))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._gone.wait(), timeout=config.shutdown_timeout_seconds)
        if config.shutdown_drain_seconds:
            await asyncio.sleep(config.shutdown_drain_seconds)
        with contextlib.suppress(Exception):
            await nodes.inbox.stop()  # out of every group: other processes stop sending here
        logger.info(
            "shutdown: handing over to the server",
            extra={
                "fields": {"remaining": len(self._live), "seconds": round(time.monotonic() - started, 3)},
            },
        )


def pending_migrations() -> int:
    """How many migrations of the installed apps are not applied to the default database."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    return len(executor.migration_plan(executor.loader.graph.leaf_nodes()))


lifecycle = Lifecycle()


class LifecycleMiddleware:
    """Outermost ASGI layer: installs the SIGTERM handler once a loop runs, answers the lifespan protocol."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if not lifecycle.signal_handler_installed:
            lifecycle.install_signal_handler(asyncio.get_running_loop())
            if nodes.shared():
                nodes.inbox.start()  # this process's inbox, read for as long as the loop runs (gateway_site.nodes)
            metrics_history.start()  # the history of the main series, every 10 s (gateway_site.metrics_history)
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] == "http" and scope.get("path", "").endswith("/events"):
            # Event streams watch what the server buffers for them (gateway_site.transport).
            scope = {**scope, transport.SCOPE_KEY: transport.probe_for(send)}
        await self.app(scope, receive, send)


async def _lifespan(receive: Any, send: Any) -> None:
    """uvicorn's lifespan protocol: nothing to start (boot ran at import); shutdown has already drained."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
