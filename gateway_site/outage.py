"""Redis outages as the edges see them (docs/scaling.md "When Redis is down").

With `STATE_BACKEND=redis`, any call to a store or to the channel layer can fail with redis-py's `ConnectionError`
or `TimeoutError`, within the bounds set in gateway_site.redis_state. Every edge hands such a failure to
`unavailable(exc)`, which returns the error to answer with, `503 {"error":"state_unavailable"}`
(docs/protocol/system-and-console.md §1.1), and None for any other exception. The `redis` package is optional and
memory mode never loads it; an exception can only come from redis-py once `redis.exceptions` is loaded, so the check
looks the module up in `sys.modules` and imports nothing.

The log has one line when an outage starts and one when it ends, never one per request. The first failure starts a
watcher thread that pings Redis every second until it answers again (readiness probes report a recovery as well).
Recovery itself needs nothing from here: redis-py drops a connection that failed and opens a new one on the next
command, in the stores' clients and in the channels_redis layer alike.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Awaitable

from django.conf import settings

from gateway_site.errors import StateUnavailable

logger = logging.getLogger("gateway.state")

WATCH_INTERVAL_SECONDS = 1.0
WATCH_PING_TIMEOUT_SECONDS = 1.0


def is_outage(exc: BaseException) -> bool:
    """True for redis-py's ConnectionError or TimeoutError (their subclasses too, e.g. BusyLoadingError while a
    restarted server loads its data)."""
    errors = sys.modules.get("redis.exceptions")
    return errors is not None and isinstance(exc, errors.ConnectionError | errors.TimeoutError)


def unavailable(exc: BaseException) -> StateUnavailable | None:
    """The answer to give when `exc` is a Redis outage (noting the outage), else None."""
    if not is_outage(exc):
        return None
    outage.started(exc)
    return StateUnavailable()


async def unless_unavailable(call: Awaitable[None]) -> StateUnavailable | None:
    """Run `call`; a Redis outage it raises becomes the answer to give (noted as the outage), anything else
    propagates."""
    try:
        await call
    except Exception as exc:
        found = unavailable(exc)
        if found is None:
            raise
        return found
    return None


class Outage:
    """Whether this process currently sees Redis as down, and the two log lines of each outage."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since: float | None = None  # monotonic time the current outage was first seen
        self._generation = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def started(self, exc: BaseException) -> None:
        """A call failed on Redis: the first failure of an outage logs it and starts the watcher."""
        with self._lock:
            if self.since is not None:
                return
            self.since = time.monotonic()
            self._generation += 1
            generation = self._generation
        logger.warning(
            "redis unavailable: requests that need shared state answer 503 state_unavailable",
            extra={"fields": {"error": type(exc).__name__}},
        )
        url = getattr(settings.GATEWAY, "redis_url", "")
        if url:
            threading.Thread(
                target=self._watch, args=(url, generation), name="gateway-redis-watch", daemon=True
            ).start()

    def ended(self) -> None:
        """Redis answered again: log the end of the outage, once."""
        with self._lock:
            if self.since is None:
                return
            seconds = time.monotonic() - self.since
            self.since = None
        logger.warning("redis available again", extra={"fields": {"down_seconds": round(seconds, 1)}})

    def _current(self, generation: int) -> bool:
        return self.since is not None and self._generation == generation

    def _watch(self, url: str, generation: int) -> None:
        """Ping every second, each ping bounded, until Redis answers or this outage was already seen to end."""
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=WATCH_PING_TIMEOUT_SECONDS,
            socket_timeout=WATCH_PING_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            while self._current(generation):
                try:
                    client.ping()
                except (redis.ConnectionError, redis.TimeoutError):
                    time.sleep(WATCH_INTERVAL_SECONDS)
                    continue
                if self._current(generation):
                    self.ended()
                return
        finally:
            client.close()


outage = Outage()
