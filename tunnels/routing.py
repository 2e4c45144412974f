"""Channels route of the tunnel WebSocket."""

from __future__ import annotations

from django.urls import path

from tunnels import consumers

websocket_urlpatterns = [
    path("gateway/v1/integrations/tunnel/connect", consumers.TunnelConsumer.as_asgi()),
]
