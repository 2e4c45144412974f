from __future__ import annotations

from django.apps import AppConfig


class RelayConfig(AppConfig):
    name = "relay"

    def ready(self) -> None:
        from relay import delivery, signals

        signals.device_deleted.connect(signals.relay_device_deleted, dispatch_uid="relay.device_deleted")
        delivery.listen()  # messages from the other processes (STATE_BACKEND=redis)
