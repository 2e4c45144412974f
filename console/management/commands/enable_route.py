"""`enable_route`: enable a webhook route for its owner's webhooks (docs/operations.md)."""

from __future__ import annotations

from console.route_switch_command import RouteSwitchCommand


class Command(RouteSwitchCommand):
    help = "Enable a webhook route an operator disabled: its webhooks reach its tunnel again."
    disabled = False
