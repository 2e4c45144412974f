"""Process start-up: keep the in-memory database alive, apply migrations to it, run the start-up hooks, log the
start-up line.

The memdb database lives as long as one connection to it is open; Django closes its connections at the end of
every request, so a keeper connection holds it for the life of the process (docs/platform-notes.md §2). Migrations run
in a separate thread because the ASGI module may be imported inside a running event loop (uvicorn), where Django
refuses synchronous database work.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import threading

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger("gateway")

_lock = threading.Lock()
_keepers: dict[str, sqlite3.Connection] = {}
_booted = False


def keep_alive(name: str) -> None:
    """Open (once) a connection that keeps the memdb database `name` alive for the life of the process."""
    with _lock:
        if name not in _keepers:
            _keepers[name] = sqlite3.connect(name, uri=True, check_same_thread=False)


def _migrate() -> None:
    from django.core.management import call_command
    from django.db import connection

    try:
        call_command("migrate", interactive=False, verbosity=0)
    finally:
        connection.close()


class StartupFailed(Exception):
    """Raised by a start-up hook (settings.GATEWAY_STARTUP_CHECKS) to stop the process; the message is for operators."""


def _run_startup_checks() -> None:
    """docs/protocol/config.md §1 step 5: a failing hook (the identity provider cannot be set up) stops the process with
    one line."""
    try:
        for dotted in settings.GATEWAY_STARTUP_CHECKS:
            import_string(dotted)()
    except StartupFailed as exc:
        sys.stderr.write(f"startup failed: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(1) from None


def start() -> None:
    """Run once per process before serving: the database keeper and migrations, then the start-up log."""
    global _booted
    with _lock:
        if _booted:
            return
        _booted = True
    config = settings.GATEWAY
    if settings.GATEWAY_AUTO_MIGRATE:
        keep_alive(settings.DATABASES["default"]["NAME"])
        errors: list[BaseException] = []

        def run() -> None:
            try:
                _migrate()
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)

        worker = threading.Thread(target=run, name="gateway-migrate")
        worker.start()
        worker.join()
        if errors:
            raise errors[0]
    _run_startup_checks()
    from gateway_site import housekeeping

    housekeeping.start()
    logger.info(
        "gateway startup",
        extra={
            "fields": {
                "auth_mode": config.auth_mode,
                "state_backend": config.state_backend,
                "public_base_url": config.public_base_url,
                "node_id": config.node_id,
            }
        },
    )
    if config.auth_mode == "demo":
        from gateway_site.checks import demo_mode_exposed

        if demo_mode_exposed():
            logger.warning(
                f"AUTH_MODE=demo on the public address {config.public_base_url}: anyone can sign in as any email; "
                "set AUTH_MODE=oidc (or firebase) and DEMO_AUTH_DISABLED=true for real use"
            )
        else:
            logger.warning("AUTH_MODE=demo: anyone who can reach this gateway can sign in as any email (local use)")
