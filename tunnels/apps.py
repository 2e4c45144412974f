from __future__ import annotations

from django.apps import AppConfig


class TunnelsConfig(AppConfig):
    name = "tunnels"
