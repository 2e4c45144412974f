"""`list_devices`: every device across users, with owner, agent, sessions and grants (docs/operations.md)."""

from __future__ import annotations

from typing import Any

from console import operator_services as services
from console.operator_command import OperatorCommand, table

API = "/console/operator/api"


class Command(OperatorCommand):
    help = "List devices across users: owner, agent online, live sessions, active grants."

    def http_call(self, options: dict[str, Any]) -> tuple[str, Any]:
        return f"{API}/devices", None

    def db_call(self, options: dict[str, Any], operator: str) -> Any:
        return services.devices()

    def render(self, result: Any) -> list[str]:
        columns = [("device_id", "DEVICE"), ("owner_uid", "OWNER"), ("online", "ONLINE"), ("connected_at", "SINCE")]
        columns += [("sessions", "SESSIONS"), ("grants", "GRANTS")]
        lines = table(result["devices"], columns)
        lines.append(f"{len(result['devices'])} device(s)" + (" (more not shown)" if result["truncated"] else ""))
        return lines
