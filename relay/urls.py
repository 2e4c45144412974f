"""URL routes of the relay app."""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []
