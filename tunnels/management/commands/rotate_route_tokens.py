"""`rotate_route_tokens`: give routes new tokens and print their new public URLs.

With the default in-memory database the routes live inside the server process, so the command asks the running
gateway over HTTP with a one-minute operator token signed by JWT_SIGNING_KEY; with a persistent DATABASE_URL it
calls the same service directly. Either way it prints what changed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway_site.errors import ApiError
from gateway_site.operator import mint_operator_token
from tunnels import services


class Command(BaseCommand):
    help = "Rotate integration route tokens: one route, every route of an owner, or every route whose token expired."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--route", default="", help="the route id (rt_…) to rotate")
        parser.add_argument("--owner", default="", help="rotate every route of this owner uid")
        parser.add_argument("--expired", action="store_true", help="rotate every route whose token has expired")
        parser.add_argument("--grace", type=int, default=300, help="seconds the old token keeps working (0-1800)")
        parser.add_argument(
            "--via",
            choices=("auto", "http", "db"),
            default="auto",
            help="auto: HTTP to the running gateway when the database is in memory, else the database",
        )
        parser.add_argument("--url", default="", help="the running gateway (default http://127.0.0.1:$PORT)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not (options["route"] or options["owner"] or options["expired"]):
            raise CommandError("choose --route, --owner or --expired")
        if not 0 <= options["grace"] <= 1800:
            raise CommandError("--grace must be between 0 and 1800")
        via = options["via"]
        if via == "auto":
            via = "http" if settings.GATEWAY.database_in_memory else "db"
        selection = {
            "route_id": options["route"],
            "owner_uid": options["owner"],
            "expired": options["expired"],
            "grace_seconds": options["grace"],
        }
        changed = self._over_http(options["url"], selection) if via == "http" else self._in_database(selection)
        for item in changed:
            line = f"rotated {item['route_id']} (owner {item['owner_uid']}): {item['public_url']}"
            if item.get("previous_token_expires_at"):
                line += f" (old token valid until {item['previous_token_expires_at']})"
            self.stdout.write(line)
        self.stdout.write(f"{len(changed)} route(s) rotated")

    def _in_database(self, selection: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            return services.routes_rotate(**selection)
        except ApiError as exc:
            raise CommandError(exc.message) from None

    def _over_http(self, url: str, selection: dict[str, Any]) -> list[dict[str, Any]]:
        base = (url or f"http://127.0.0.1:{settings.GATEWAY.port}").rstrip("/")
        request = urllib.request.Request(  # noqa: S310 - an operator-given http(s) URL
            f"{base}/operator/routes/rotate-tokens",
            data=json.dumps(selection).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {mint_operator_token()}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return list(json.loads(response.read())["rotated"])
        except urllib.error.HTTPError as exc:
            raise CommandError(f"the gateway refused: {exc.code} {exc.read().decode(errors='replace')}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise CommandError(f"cannot reach the gateway at {base}: {exc}") from None
