"""Channels routes of the tunnel WebSocket and of the request inspector's event stream."""

from __future__ import annotations

from django.urls import path

from tunnels import consumers
from tunnels.inspector_stream import RequestEventsConsumer

websocket_urlpatterns = [
    path("gateway/v1/integrations/tunnel/connect", consumers.TunnelConsumer.as_asgi()),
]

stream_urlpatterns = [
    path("gateway/v1/integrations/routes/<str:route_id>/requests/events", RequestEventsConsumer.as_asgi()),
]
