"""Integration routes: public webhook URLs bound to a device's tunnel (docs/protocol/tunnels.md §1). Tokens are stored
as hashes."""

from __future__ import annotations

from django.db import models

from relay.models import Device


class IntegrationRoute(models.Model):
    PROVISIONED, ACTIVE, INACTIVE = "provisioned", "active", "inactive"

    route_id = models.CharField(max_length=40, primary_key=True)
    owner_uid = models.CharField(max_length=255, db_index=True)
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="routes", db_column="device_id")
    interface_id = models.CharField(max_length=255, blank=True)
    interface_type = models.CharField(max_length=32)
    token_auth_mode = models.CharField(max_length=16, default="path")
    status = models.CharField(max_length=16, default=PROVISIONED)
    deadline_ms = models.IntegerField(default=2500)
    max_body_bytes = models.IntegerField(default=1048576)
    token_max_age_days = models.IntegerField(default=90)
    token_expires_at = models.DateTimeField()
    token_last_used_at = models.DateTimeField(null=True)
    # SHA-256 (lowercase hex) of the current token, and of the previous one during its rotation grace.
    token_hash = models.CharField(max_length=64)
    previous_token_hash = models.CharField(max_length=64, blank=True)
    previous_token_expires_at = models.DateTimeField(null=True)
    # Set when the owner disabled the route through the API (PUT status inactive): then, unlike a tunnel's own
    # deactivation, a reconnecting tunnel may not turn it back on (docs/protocol/tunnels.md §9 [S]).
    owner_disabled = models.BooleanField(default=False)
    # Set by an operator (docs/operations.md): ingress refuses the route's webhooks with 503 while the tunnel keeps its
    # activation, so enabling the route again restores delivery at once.
    operator_disabled = models.BooleanField(default=False)
    # Webhook signature verification (docs/protocol/webhooks.md §1; tunnels.verify): "" when off. The secret is stored
    # sealed (AES-GCM under a key derived from JWT_SIGNING_KEY), never in plaintext.
    verify_provider = models.CharField(max_length=16, blank=True, default="")
    verify_secret_sealed = models.TextField(blank=True, default="")
    verify_header = models.CharField(max_length=100, blank=True, default="")
    verify_tolerance_seconds = models.IntegerField(default=300)
    # The request inspector keeps webhook bodies (docs/protocol/webhooks.md §2 `inspect.capture_bodies`).
    inspect_capture_bodies = models.BooleanField(default=False)
    # Offline buffering (docs/protocol/webhooks.md §3; tunnels.buffer): off unless enabled.
    buffer_enabled = models.BooleanField(default=False)
    buffer_max_requests = models.IntegerField(default=100)
    buffer_ttl_seconds = models.IntegerField(default=3600)
    version = models.IntegerField(default=1)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.route_id
