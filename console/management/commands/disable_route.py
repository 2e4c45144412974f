"""`disable_route`: disable a webhook route for its owner's webhooks (docs/operations.md)."""

from __future__ import annotations

from console.route_switch_command import RouteSwitchCommand


class Command(RouteSwitchCommand):
    help = "Disable a webhook route: ingress answers its webhooks 503 until it is enabled again."
    disabled = True
