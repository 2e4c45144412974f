from __future__ import annotations

from django.apps import AppConfig


class OauthappConfig(AppConfig):
    name = "oauthapp"
