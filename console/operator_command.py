"""The shape every operator management command shares (docs/operations.md, "Operator console and commands").

A command asks the running gateway over HTTP (the operator API, with a 60-second command token) or calls the
operator services directly against the database, exactly as `rotate_route_tokens` does; `--via auto` picks the
database only when it and the live state are shared (a persistent DATABASE_URL and STATE_BACKEND=redis). It prints
a table or what changed, or with `--json` the answer as JSON; any failure is one line and a non-zero exit.
"""

from __future__ import annotations

import getpass
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from gateway_site import operator_client
from gateway_site.errors import ApiError

AUTO_HELP = (
    "auto: the database when it and the live state are shared (a persistent DATABASE_URL and STATE_BACKEND=redis), "
    "else HTTP to the running gateway"
)


def db_operator() -> str:
    """How the audit log names a command run against the database: `cmd-db:` and the shell user."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment
        user = "unknown"
    return f"cmd-db:{user[:64]}"


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> list[str]:
    """Rows as aligned text lines under a header (`columns`: (key, title))."""
    cells = [[title for _, title in columns]] + [[_cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return ["  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip() for line in cells]


def _cell(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if value is None or value == "":
        return "-"
    if isinstance(value, dict):
        return " ".join(f"{k}:{v}" for k, v in value.items())
    return str(value)


class OperatorCommand(BaseCommand):
    """Subclasses say what to call over HTTP (`http_call`), what to call in the database (`db_call`) and how to print
    the answer (`render`)."""

    def add_arguments(self, parser: CommandParser) -> None:
        self.add_own_arguments(parser)
        operator_client.add_target_arguments(parser, auto_help=AUTO_HELP)
        parser.add_argument("--json", action="store_true", help="print the answer as JSON (for scripts)")

    def add_own_arguments(self, parser: CommandParser) -> None:
        """The command's own arguments."""

    def handle(self, *args: Any, **options: Any) -> None:
        via = operator_client.resolve_via(options["via"], live_state=True)
        try:
            if via == "http":
                path, body = self.http_call(options)
                result = operator_client.operator_call(options["url"], path, body=body)
            else:
                result = self.db_call(options, db_operator())
        except ApiError as exc:
            raise CommandError(exc.message) from None
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2, ensure_ascii=False))
            return
        for line in self.render(result):
            self.stdout.write(line)

    def http_call(self, options: dict[str, Any]) -> tuple[str, Any]:
        """(path under the gateway, JSON body or None for a GET)."""
        raise NotImplementedError

    def db_call(self, options: dict[str, Any], operator: str) -> Any:
        raise NotImplementedError

    def render(self, result: Any) -> list[str]:
        raise NotImplementedError
