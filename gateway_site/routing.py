"""Channels routes: SSE consumers served ahead of Django in the `http` branch, and the WebSocket consumers.

The apps append their consumers here as they are built.
"""

from __future__ import annotations

from typing import Any

http_consumer_routes: list[Any] = []
websocket_routes: list[Any] = []
