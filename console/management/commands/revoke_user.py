"""`revoke_user`: revoke everything of one user (docs/operations.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from console import operator_services as services
from console.operator_command import OperatorCommand

API = "/console/operator/api"


class Command(OperatorCommand):
    help = (
        "Revoke everything of one user: refresh tokens, grants given and received, sessions, routes (disabled) and "
        "agent sockets. Access tokens already issued stay valid until they expire."
    )

    def add_own_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("uid", help="the user's uid (the `sub` of their tokens)")

    def http_call(self, options: dict[str, Any]) -> tuple[str, Any]:
        return f"{API}/users/revoke", {"uid": options["uid"]}

    def db_call(self, options: dict[str, Any], operator: str) -> Any:
        return services.revoke_user(options["uid"], operator=operator)

    def render(self, result: Any) -> list[str]:
        return [
            f"revoked {result['uid']}: {result['refresh_tokens']} refresh token(s), {result['grants']} grant(s), "
            f"{result['sessions']} session(s), {result['routes']} route(s) disabled, {result['agents']} agent(s) "
            "disconnected"
        ]
