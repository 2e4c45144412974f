"""The project package is also an app: it carries the system checks and the `runserver` override."""

from __future__ import annotations

from django.apps import AppConfig


class GatewaySiteConfig(AppConfig):
    name = "gateway_site"
    verbose_name = "Gateway"

    def ready(self) -> None:
        from gateway_site import checks  # noqa: F401 - registers the system checks
