"""`rotate_route_tokens`: give routes new tokens and print their new public URLs.

With the default in-memory database the routes live inside the server process, so the command asks the running
gateway over HTTP with a one-minute operator token signed by JWT_SIGNING_KEY (the server's issuer is read from its
discovery document, so the command's own PORT or PUBLIC_BASE_URL do not matter); with a persistent DATABASE_URL it
calls the same service directly. Either way it prints what changed, and fails naming any route that is malformed or
unknown (then nothing is rotated).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway_site import operator_client
from gateway_site.errors import ApiError
from tunnels import services, tokens


class Command(BaseCommand):
    help = "Rotate integration route tokens: named routes, every route of an owner, or every route whose token expired."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--route", action="append", default=[], help="a route id (rt_ + 32 hex digits); repeat for several"
        )
        parser.add_argument("--owner", default="", help="rotate every route of this owner uid")
        parser.add_argument("--expired", action="store_true", help="rotate every route whose token has expired")
        parser.add_argument("--grace", type=int, default=300, help="seconds the old token keeps working (0-1800)")
        operator_client.add_target_arguments(
            parser, auto_help="auto: HTTP to the running gateway when the database is in memory, else the database"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        route_ids = [rid.strip() for rid in options["route"]]
        if not (route_ids or options["owner"] or options["expired"]):
            raise CommandError("choose --route, --owner or --expired")
        malformed = [rid for rid in route_ids if not tokens.ROUTE_ID_RE.fullmatch(rid)]
        if malformed:
            raise CommandError(f"malformed route id: {', '.join(malformed)} (expected rt_ and 32 hex digits)")
        if not 0 <= options["grace"] <= 1800:
            raise CommandError("--grace must be between 0 and 1800")
        via = operator_client.resolve_via(options["via"], live_state=False)
        selection = {
            "route_ids": route_ids,
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
        answer = operator_client.operator_call(url, "/operator/routes/rotate-tokens", body=selection)
        return list(answer["rotated"])
