"""Device routes (the events stream's GET is a consumer in relay.routing)."""

from __future__ import annotations

from django.urls import path

from relay import views

urlpatterns = [
    path("gateway/v1/agent/connect", views.agent_connect_http),
    path("gateway/v1/devices", views.device_list),
    path("gateway/v1/devices/events", views.device_events_non_get),
    path("gateway/v1/devices/<str:device_id>/identity-key", views.identity_key),
    path("gateway/v1/devices/<str:device_id>", views.device_detail),
]
