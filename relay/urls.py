"""Device and session routes (the two event streams' GETs are consumers in relay.routing)."""

from __future__ import annotations

from django.urls import path

from relay import session_views, views

urlpatterns = [
    path("gateway/v1/agent/connect", views.agent_connect_http),
    path("gateway/v1/devices", views.device_list),
    path("gateway/v1/devices/events", views.device_events_non_get),
    path("gateway/v1/devices/<str:device_id>/identity-key", views.identity_key),
    path("gateway/v1/devices/<str:device_id>", views.device_detail),
    path("gateway/v1/sessions/<str:session_id>/handshake/client-init", session_views.client_init),
    path("gateway/v1/sessions/<str:session_id>/handshake/agent-ack", session_views.agent_ack),
    path("gateway/v1/sessions/<str:session_id>/handshake/<str:handshake_id>", session_views.handshake_read),
    path("gateway/v1/sessions/<str:session_id>/messages", session_views.messages),
    path("gateway/v1/sessions/<str:session_id>/events", session_views.session_events_non_get),
]
