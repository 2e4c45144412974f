"""`runserver` as Daphne serves it, defaulting to the contract's PORT and logging through our access log."""

from __future__ import annotations

from typing import Any

from daphne.management.commands.runserver import Command as DaphneRunserver
from django.conf import settings


class Command(DaphneRunserver):
    help = "Start the gateway under Daphne for development and demo use (PORT, default 8080)."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default_port = str(settings.GATEWAY.port)

    def check_migrations(self) -> None:
        # The in-memory database is created and migrated when the server process boots (gateway_site.boot),
        # so the "unapplied migrations" warning would be wrong here.
        if not settings.GATEWAY_AUTO_MIGRATE:
            super().check_migrations()

    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        # Daphne's own request lines include query strings (which can carry codes and tokens);
        # gateway_site.accesslog writes one redacted line per request instead.
        return
