"""URL routes of the shares app."""

from __future__ import annotations

from typing import Any

urlpatterns: list[Any] = []
