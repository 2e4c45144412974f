"""System checks for the gateway's own configuration (`manage.py check --deploy`).

Each names the variable to change. They are tagged `deploy`, so they run with `--deploy` (and at `runserver`'s start
only if asked for), not on every management command of a developer's machine.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is this machine only (localhost, 127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def demo_mode_exposed() -> bool:
    config = settings.GATEWAY
    return bool(config.auth_mode == "demo" and not is_loopback_url(config.public_base_url))


@register(Tags.security, deploy=True)
def check_demo_sign_in(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    if not demo_mode_exposed():
        return []
    return [
        Warning(
            f"AUTH_MODE=demo on a public address ({settings.GATEWAY.public_base_url}): anyone who can reach the "
            "sign-in page can sign in as any email address and use every account.",
            hint="Set AUTH_MODE=oidc (or firebase) with its provider variables, and DEMO_AUTH_DISABLED=true.",
            id="gateway.W001",
        )
    ]


@register(Tags.compatibility, deploy=True)
def check_single_process(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    config = settings.GATEWAY
    if config.state_backend != "memory" or config.web_concurrency <= 1:
        return []
    return [
        Warning(
            f"WEB_CONCURRENCY={config.web_concurrency} with STATE_BACKEND=memory: each process would keep its own "
            "sessions, presence, rate limits and (with the default database) its own devices and routes, so "
            "requests that land on different processes would not see each other's state.",
            hint="Run exactly one gateway process with in-memory state (WEB_CONCURRENCY=1).",
            id="gateway.W002",
        )
    ]


@register(Tags.security, deploy=True)
def check_debug(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    if not settings.GATEWAY.debug:
        return []
    return [
        Warning(
            "DJANGO_DEBUG=true: error pages show code, settings and request data.",
            hint="Leave DJANGO_DEBUG unset (false) outside development.",
            id="gateway.W003",
        )
    ]


@register(Tags.security, deploy=True)
def check_plain_http(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    url = settings.GATEWAY.public_base_url
    if url.lower().startswith("https://") or is_loopback_url(url):
        return []
    return [
        Warning(
            f"PUBLIC_BASE_URL={url} is plain http on a public address: access tokens, refresh tokens and webhook "
            "route tokens would cross the network unencrypted.",
            hint="Serve the gateway behind TLS and set PUBLIC_BASE_URL to its https:// address.",
            id="gateway.W004",
        )
    ]
