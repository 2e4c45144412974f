"""Channels routes of the relay: the agent WebSocket and the device events stream (GET only)."""

from __future__ import annotations

from django.urls import path

from relay import consumers

websocket_urlpatterns = [
    path("gateway/v1/agent/connect", consumers.AgentConsumer.as_asgi()),
]

stream_urlpatterns = [
    path("gateway/v1/devices/events", consumers.DeviceEventsConsumer.as_asgi()),
    path("gateway/v1/sessions/<str:session_id>/events", consumers.SessionEventsConsumer.as_asgi()),
]
