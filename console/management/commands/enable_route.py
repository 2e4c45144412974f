"""`enable_route`: enable a webhook route for its owner's webhooks (docs/operations.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from console import operator_services as services
from console.operator_command import OperatorCommand
from tunnels import tokens

API = "/console/operator/api"
DISABLED = False


class Command(OperatorCommand):
    help = (
        "Disable a webhook route: ingress answers its webhooks 503 until it is enabled again."
        if DISABLED
        else "Enable a webhook route an operator disabled: its webhooks reach its tunnel again."
    )

    def add_own_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("route_id", help="the route (rt_ and 32 hex digits)")

    def http_call(self, options: dict[str, Any]) -> tuple[str, Any]:
        return f"{API}/routes/{_route_id(options)}/enable", {}

    def db_call(self, options: dict[str, Any], operator: str) -> Any:
        return services.set_route_disabled(_route_id(options), disabled=DISABLED, operator=operator)

    def render(self, result: Any) -> list[str]:
        state = "disabled" if result["disabled"] else "enabled"
        return [f"{state} {result['route_id']} (owner {result['owner_uid']})"]


def _route_id(options: dict[str, Any]) -> str:
    route_id = str(options["route_id"]).strip()
    if not tokens.ROUTE_ID_RE.fullmatch(route_id):
        raise CommandError(f"malformed route id: {route_id} (expected rt_ and 32 hex digits)")
    return route_id
