"""URL routes of the oauthapp app."""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []
