"""`operator_login`: print a one-time sign-in link to the operator console (docs/operations.md).

The link is signed here with JWT_SIGNING_KEY for the running gateway's issuer (read from its discovery document, so
this process's own PORT or PUBLIC_BASE_URL do not matter), valid for 10 minutes and once. It points at `--url` when
given, else at the gateway's public address (its issuer). It works in every auth mode: nobody without the server's
key can make one.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from gateway_site import operator_client
from gateway_site.operator import LOGIN_TTL_SECONDS, login_link, mint_login_token
from gateway_site.timefmt import rfc3339


class Command(BaseCommand):
    help = "Print a one-time sign-in link to the operator console, valid for 10 minutes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="", help="the running gateway (default http://127.0.0.1:$PORT)")
        parser.add_argument("--json", action="store_true", help="print {url, expires_at} as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        base = operator_client.base_url(options["url"])
        issuer = operator_client.server_issuer(base)
        now = int(time.time())
        link = login_link(base if options["url"] else issuer, mint_login_token(issuer=issuer, now=now))
        expires_at = rfc3339(now + LOGIN_TTL_SECONDS)
        if options["json"]:
            self.stdout.write(json.dumps({"url": link, "expires_at": expires_at}))
            return
        self.stdout.write(link)
        self.stdout.write(f"(one use, valid until {expires_at}; keep it secret: it opens the operator console)")
