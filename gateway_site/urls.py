"""Root URL configuration: system endpoints, each app's routes, then the JSON 404 for everything else."""

from __future__ import annotations

from django.urls import include, path, re_path

from gateway_site import health, views

urlpatterns = [
    path("", health.index, name="index"),
    path("health", health.healthz, name="health"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("openapi.yaml", health.openapi, name="openapi"),
    path("metrics", health.metrics_endpoint, name="metrics"),
    path("gateway/v1/health", health.gateway_health, name="gateway-health"),
    path("", include("oauthapp.urls")),
    path("", include("relay.urls")),
    path("", include("shares.urls")),
    path("", include("tunnels.urls")),
    path("", include("console.urls")),
    re_path(r"", views.fallback_not_found),
]

handler400 = "gateway_site.views.handler400"
handler403 = "gateway_site.views.handler403"
handler404 = "gateway_site.views.handler404"
handler500 = "gateway_site.views.handler500"
