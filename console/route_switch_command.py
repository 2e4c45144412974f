"""The shared body of `disable_route` and `enable_route` (docs/operations.md): one route, switched off or on."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from console import operator_services as services
from console.operator_command import OperatorCommand
from tunnels import tokens

API = "/console/operator/api"


class RouteSwitchCommand(OperatorCommand):
    """Subclasses set `disabled`: what the command makes of the route."""

    disabled: bool

    def add_own_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("route_id", help="the route (rt_ and 32 hex digits)")

    def http_call(self, options: dict[str, Any]) -> tuple[str, Any]:
        action = "disable" if self.disabled else "enable"
        return f"{API}/routes/{route_id_of(options)}/{action}", {}

    def db_call(self, options: dict[str, Any], operator: str) -> Any:
        return services.set_route_disabled(route_id_of(options), disabled=self.disabled, operator=operator)

    def render(self, result: Any) -> list[str]:
        state = "disabled" if result["disabled"] else "enabled"
        return [f"{state} {result['route_id']} (owner {result['owner_uid']})"]


def route_id_of(options: dict[str, Any]) -> str:
    route_id = str(options["route_id"]).strip()
    if not tokens.ROUTE_ID_RE.fullmatch(route_id):
        raise CommandError(f"malformed route id: {route_id} (expected rt_ and 32 hex digits)")
    return route_id
