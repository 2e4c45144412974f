"""Share routes (docs/protocol/devices-and-shares.md §9) and the invite link page (docs/protocol/decisions.md D2)."""

from __future__ import annotations

from django.urls import path

from shares import views

urlpatterns = [
    path("gateway/v1/shares/invites", views.invites),
    path("gateway/v1/shares/invites/accept", views.accept),
    path("gateway/v1/shares/devices/<str:device_id>/grants", views.device_grants),
    path("gateway/v1/shares/grants/<str:grant_id>/revoke", views.revoke),
    path("gateway/v1/shares/grants/<str:grant_id>/leave", views.leave),
    path("share/<str:token>", views.share_page),
]
