"""What the WebSocket consumers do when a handler fails unexpectedly.

Without this, an exception escaping a Channels handler ends the application: the server drops the socket with no
close frame and the consumer's `disconnect` never runs, so a device stays listed online and a tunnel keeps its
routes until a watchdog notices. Here the failure is logged, the consumer gives back everything it holds, and the
client gets a documented answer: before the upgrade `500 {"error":"internal_error"}` (docs/protocol/relay.md §5.1,
docs/protocol/tunnels.md §3.1), after it a close with 1011 (internal error), so it reconnects.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from channels.exceptions import AcceptConnection, DenyConnection, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from gateway_site.auth import refuse_websocket
from gateway_site.errors import ApiError

logger = logging.getLogger("gateway.sockets")

CLOSE_INTERNAL_ERROR = 1011


class ContainedWebsocketConsumer(AsyncWebsocketConsumer):
    """The base of the gateway's sockets; a subclass's `disconnect(code)` must be safe to call more than once."""

    accepted = False

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True

    async def dispatch(self, message: dict[str, Any]) -> None:
        try:
            await super().dispatch(message)
        except (StopConsumer, AcceptConnection, DenyConnection):
            raise
        except Exception:
            logger.exception(
                "socket handler failed",
                extra={"fields": {"path": self.scope.get("path", ""), "message": message.get("type", "")}},
            )
            with contextlib.suppress(Exception):
                await self.disconnect(CLOSE_INTERNAL_ERROR)
            with contextlib.suppress(Exception):
                if self.accepted:
                    await self.close(code=CLOSE_INTERNAL_ERROR)
                else:
                    await refuse_websocket(self, ApiError("internal_error", status=500))
