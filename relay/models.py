"""Durable relay entities: devices and their identity keys. Presence and sessions are ephemeral (relay.stores)."""

from __future__ import annotations

from django.db import models


class Device(models.Model):
    """A device (an agent installation). Ids are global and first-come (docs/protocol/devices-and-shares.md §2)."""

    device_id = models.CharField(max_length=128, primary_key=True)
    display_name = models.CharField(max_length=128, blank=True)
    owner_uid = models.CharField(max_length=255, db_index=True)
    owner_email = models.CharField(max_length=320, blank=True, db_index=True)
    # Standard base64 of the raw 32-byte Ed25519 key; empty for devices auto-created by integration routes.
    public_key = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.device_id
