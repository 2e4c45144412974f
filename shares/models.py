"""Durable sharing entities: grants (with their whole history) and the invite-token digests that point at them."""

from __future__ import annotations

from django.db import models

from relay.models import Device


class Grant(models.Model):
    """One invitation and, once accepted, one collaborator's access to a device (docs/protocol/devices-and-shares.md
    §8.1).

    Times are Unix seconds, as the wire carries them. `status` is the stored status; readers use the effective one
    (shares.permissions.effective_status).
    """

    PENDING, ACTIVE, REVOKED, EXPIRED = "pending", "active", "revoked", "expired"

    grant_id = models.CharField(max_length=40, primary_key=True)
    # Deleting a device deletes its grants (docs/protocol/decisions.md D1).
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="grants", db_column="device_id")
    owner_uid = models.CharField(max_length=255, db_index=True)
    owner_email = models.CharField(max_length=320, blank=True)
    grantee_email = models.CharField(max_length=320, db_index=True)
    grantee_uid = models.CharField(max_length=255, blank=True, db_index=True)
    grantee_device_id = models.CharField(max_length=128, blank=True)
    role = models.CharField(max_length=32, default="collaborator")
    status = models.CharField(max_length=16, default=PENDING)
    invite_token_expires_at = models.BigIntegerField(default=0)
    grant_expires_at = models.BigIntegerField(default=0)
    accepted_at = models.BigIntegerField(default=0)
    revoked_at = models.BigIntegerField(default=0)
    revoked_by_uid = models.CharField(max_length=255, blank=True)
    created_at = models.BigIntegerField()
    updated_at = models.BigIntegerField()
    # Sub-second creation time, so that grants made within one second still list in the order they were made.
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "grant_id"]

    def __str__(self) -> str:
        return self.grant_id


class InviteToken(models.Model):
    """`base64url(SHA-256(token))` -> grant. The token itself is never stored; single use."""

    token_hash = models.CharField(max_length=64, primary_key=True)
    grant = models.ForeignKey(Grant, on_delete=models.CASCADE, related_name="invite_tokens")

    def __str__(self) -> str:
        return f"InviteToken for {self.grant_id}"
