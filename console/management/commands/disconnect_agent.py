"""`disconnect_agent`: close a device's agent socket, wherever it is (docs/operations.md)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.core.management.base import CommandParser

from console import operator_services as services
from console.operator_command import OperatorCommand

API = "/console/operator/api"


class Command(OperatorCommand):
    help = "Disconnect a device's agent (close 1008 disconnected_by_operator); the agent may reconnect."

    def add_own_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("device_id", help="the device whose agent to disconnect")

    def http_call(self, options: dict[str, Any]) -> tuple[str, Any]:
        return f"{API}/devices/{quote(options['device_id'], safe='')}/disconnect", {}

    def db_call(self, options: dict[str, Any], operator: str) -> Any:
        return services.disconnect_agent(options["device_id"], operator=operator)

    def render(self, result: Any) -> list[str]:
        if result["disconnected"]:
            return [f"disconnected the agent of {result['device_id']} (owner {result['owner_uid']})"]
        return [f"{result['device_id']} has no agent connected: nothing to do"]
