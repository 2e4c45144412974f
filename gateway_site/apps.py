"""The project package is also an app: it registers the deploy system checks (gateway.W001-W004 in
gateway_site.checks) and carries the `runserver` override."""

from __future__ import annotations

from django.apps import AppConfig


class GatewaySiteConfig(AppConfig):
    name = "gateway_site"
    verbose_name = "Gateway"

    def ready(self) -> None:
        from gateway_site import checks  # noqa: F401 - importing registers the checks (`@register`)
