"""Console routes: the page and its assets, and the operator console with its API (docs/operations.md)."""

from __future__ import annotations

from django.urls import path

from console import operator_views as operator
from console import views

urlpatterns = [
    path("console", views.console),
    path("console/assets/<str:name>", views.asset),
    path("console/operator", operator.page),
    path("console/operator/login", operator.login_page),
    path("console/operator/api/session", operator.session),
    path("console/operator/api/overview", operator.overview),
    path("console/operator/api/users", operator.users),
    path("console/operator/api/users/revoke", operator.revoke_user),
    path("console/operator/api/devices", operator.devices),
    path("console/operator/api/devices/<str:device_id>/disconnect", operator.disconnect_agent),
    path("console/operator/api/routes", operator.routes),
    path("console/operator/api/routes/<str:route_id>/disable", operator.disable_route),
    path("console/operator/api/routes/<str:route_id>/enable", operator.enable_route),
    path("console/operator/api/routes/<str:route_id>/rotate-token", operator.rotate_route_token),
]
