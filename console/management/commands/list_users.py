"""`list_users`: every user, with email, devices and last seen (docs/operations.md)."""

from __future__ import annotations

from typing import Any

from console import operator_services as services
from console.operator_command import OperatorCommand, table

API = "/console/operator/api"


class Command(OperatorCommand):
    help = "List users: uid, email, devices, last seen."

    def http_call(self, options: dict[str, Any]) -> tuple[str, Any]:
        return f"{API}/users", None

    def db_call(self, options: dict[str, Any], operator: str) -> Any:
        return services.users()

    def render(self, result: Any) -> list[str]:
        columns = [("uid", "UID"), ("email", "EMAIL"), ("email_verified", "VERIFIED"), ("devices", "DEVICES")]
        columns += [("agents_online", "ONLINE"), ("last_seen_at", "LAST SEEN")]
        lines = table(result["users"], columns)
        lines.append(f"{len(result['users'])} user(s)" + (" (more not shown)" if result["truncated"] else ""))
        return lines
