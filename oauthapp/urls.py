"""OAuth routes (docs/protocol/oauth.md §1)."""

from __future__ import annotations

from django.urls import path

from oauthapp import views

urlpatterns = [
    path(".well-known/openid-configuration", views.discovery),
    path(".well-known/oauth-authorization-server", views.discovery),
    path("oauth/.well-known/openid-configuration", views.discovery),
    path(".well-known/jwks.json", views.jwks),
    path("oauth/.well-known/jwks.json", views.jwks),
    path("register", views.register),
    path("oauth/authorize", views.authorize),
    path("oauth/token", views.token),
    path("oauth/token/revoke", views.revoke),
]
