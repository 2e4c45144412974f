"""URL routes of the console app."""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []
