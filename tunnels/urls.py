"""Integration routes, the public webhook ingress and the operator endpoint (docs/protocol/tunnels.md)."""

from __future__ import annotations

from django.urls import path

from tunnels import views

urlpatterns = [
    path("gateway/v1/integrations/routes", views.routes),
    path("gateway/v1/integrations/routes/<str:route_id>", views.route_detail),
    path("gateway/v1/integrations/routes/<str:route_id>/rotate-token", views.rotate_token),
    path("gateway/v1/integrations/routes/<str:route_id>/requests", views.route_requests),
    path("gateway/v1/integrations/routes/<str:route_id>/requests/<str:request_id>", views.route_request),
    path("gateway/v1/integrations/routes/<str:route_id>/requests/<str:request_id>/replay", views.route_request_replay),
    path("gateway/v1/integrations/tunnel/connect", views.tunnel_connect_http),
    path("integrations/<str:route_id>/<str:route_token>", views.ingress),
    path("operator/routes/rotate-tokens", views.operator_rotate),
]
