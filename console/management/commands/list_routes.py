"""`list_routes`: every webhook route across owners, with status, tunnel, last use and today's answers
(docs/operations.md)."""

from __future__ import annotations

from typing import Any

from console import operator_services as services
from console.operator_command import OperatorCommand, table

API = "/console/operator/api"


class Command(OperatorCommand):
    help = "List webhook routes across owners: status, tunnel connected, last used, today's answers by class."

    def http_call(self, options: dict[str, Any]) -> tuple[str, Any]:
        return f"{API}/routes", None

    def db_call(self, options: dict[str, Any], operator: str) -> Any:
        return services.routes()

    def render(self, result: Any) -> list[str]:
        rows = [{**route, **route["answers_today"]} for route in result["routes"]]
        columns = [("route_id", "ROUTE"), ("owner_uid", "OWNER"), ("status", "STATUS"), ("disabled", "DISABLED")]
        columns += [("tunnel_connected", "TUNNEL"), ("last_used_at", "LAST USED")]
        columns += [("buffered", "BUFFERED"), ("recorded", "RECORDED")]
        columns += [("2xx", "2XX"), ("4xx", "4XX"), ("5xx", "5XX"), ("429", "429")]
        lines = table(rows, columns)
        lines.append(f"{len(rows)} route(s)" + (" (more not shown)" if result["truncated"] else ""))
        return lines
