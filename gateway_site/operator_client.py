"""What every operator management command shares: choosing between the running gateway and the database, and calling
the gateway's operator endpoints over HTTP (docs/architecture.md, "Operator commands"; docs/operations.md).

With the default in-memory database the state lives inside the server process, so a command asks the running gateway
over HTTP with a one-minute command token signed by JWT_SIGNING_KEY. The server's issuer is read from its discovery
document first, so the command's own PORT or PUBLIC_BASE_URL do not matter. Every failure becomes a CommandError
(one clear line, non-zero exit).
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from gateway_site.operator import mint_operator_token

TIMEOUT_SECONDS = 30


def add_target_arguments(parser: CommandParser, *, auto_help: str) -> None:
    """`--via auto|http|db` and `--url`, as every operator command takes them."""
    parser.add_argument("--via", choices=("auto", "http", "db"), default="auto", help=auto_help)
    parser.add_argument("--url", default="", help="the running gateway (default http://127.0.0.1:$PORT)")


def resolve_via(via: str, *, live_state: bool) -> str:
    """`http` or `db` for the `--via` option. `auto` picks the database when it holds everything the command needs:
    a persistent database, and with `live_state` also shared state (STATE_BACKEND=redis: presence, sessions and
    sockets of every process are reachable from here); otherwise the running gateway."""
    config = settings.GATEWAY
    if via == "auto":
        shared = not config.database_in_memory and (not live_state or config.state_backend == "redis")
        return "db" if shared else "http"
    if via == "db" and config.database_in_memory:
        raise CommandError(
            "--via db needs a persistent DATABASE_URL: the in-memory database lives inside the server process"
        )
    return via


def base_url(url: str) -> str:
    return (url or f"http://127.0.0.1:{settings.GATEWAY.port}").rstrip("/")


def call(base: str, path: str, *, body: Any = None, method: str = "", headers: dict[str, str] | None = None) -> Any:
    """One JSON request to the gateway at `base`; the parsed answer, or CommandError naming the refusal."""
    request = urllib.request.Request(  # noqa: S310 - an operator-given http(s) URL
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json", **(headers or {})},
        method=method or ("GET" if body is None else "POST"),
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            error = json.loads(detail)["error"]
            detail = str(error["message"] if isinstance(error, dict) else error)
        raise CommandError(f"the gateway refused: {exc.code} {detail}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CommandError(f"cannot reach the gateway at {base}: {exc}") from None


def server_issuer(base: str) -> str:
    """The running gateway's issuer (its PUBLIC_BASE_URL), from its discovery document."""
    document = call(base, "/.well-known/openid-configuration")
    issuer = document.get("issuer") if isinstance(document, dict) else None
    if not isinstance(issuer, str) or not issuer:
        raise CommandError(f"the gateway at {base} did not say its issuer")
    return issuer


def operator_call(url: str, path: str, *, body: Any = None, method: str = "") -> Any:
    """Call an operator endpoint of the running gateway with a fresh command token."""
    base = base_url(url)
    token = mint_operator_token(issuer=server_issuer(base))
    return call(base, path, body=body, method=method, headers={"Authorization": f"Bearer {token}"})
