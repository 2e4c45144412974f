"""Channels routes of the relay: the agent WebSocket and the two event streams (GET only)."""

from __future__ import annotations

from django.urls import path

from relay.agent_socket import AgentConsumer
from relay.event_streams import DeviceEventsConsumer, SessionEventsConsumer

websocket_urlpatterns = [
    path("gateway/v1/agent/connect", AgentConsumer.as_asgi()),
]

stream_urlpatterns = [
    path("gateway/v1/devices/events", DeviceEventsConsumer.as_asgi()),
    path("gateway/v1/sessions/<str:session_id>/events", SessionEventsConsumer.as_asgi()),
]
