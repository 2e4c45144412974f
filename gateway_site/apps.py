"""The project package is also an app: it registers the deploy system checks (gateway.W001-W004 in
gateway_site.checks), sets up the metrics (gateway_site.metrics) and carries the `runserver` override."""

from __future__ import annotations

from django.apps import AppConfig


class GatewaySiteConfig(AppConfig):
    name = "gateway_site"
    verbose_name = "Gateway"

    def ready(self) -> None:
        from django.conf import settings

        from gateway_site import checks, metrics  # noqa: F401 - importing `checks` registers them (`@register`)

        metrics.configure(node_id=settings.GATEWAY.node_id, enabled=settings.GATEWAY.metrics_enabled)
