from __future__ import annotations

from django.apps import AppConfig


class TunnelsConfig(AppConfig):
    name = "tunnels"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from relay.signals import device_deleted
        from tunnels import delivery, services
        from tunnels.models import IntegrationRoute

        device_deleted.connect(delivery.device_deleted, dispatch_uid="tunnels.device_deleted")
        delivery.listen()  # messages from the other processes (STATE_BACKEND=redis)
        # However a route row goes (its own DELETE or its device's cascade), ingress must not serve its snapshot.
        post_delete.connect(services.route_row_deleted, sender=IntegrationRoute, dispatch_uid="tunnels.route_deleted")
