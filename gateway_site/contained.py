"""What the WebSocket consumers do when a handler fails unexpectedly, or Redis goes down under them.

Without this, an exception escaping a Channels handler ends the application: the server drops the socket with no
close frame and the consumer's `disconnect` never runs, so a device stays listed online and a tunnel keeps its
routes until a watchdog notices. Here the failure is logged, the consumer gives back everything it holds, and the
client gets a documented answer: before the upgrade `500 {"error":"internal_error"}` (docs/protocol/relay.md §5.1,
docs/protocol/tunnels.md §3.1), after it a close with 1011 (internal error), so it reconnects.

A Redis outage (Redis mode; gateway_site.outage) is not a bug but a state that passes: a store call or the
channel-layer receive fails with redis-py's ConnectionError or TimeoutError. The consumer gives back what it holds
in the same way; before the upgrade it is refused like any other refusal, with `503 {"error":"state_unavailable"}`,
and after it the socket closes with 1013 (try again later), so the client reconnects once Redis is back and joins
its groups again (docs/scaling.md "When Redis is down"). The outage is logged once, not once per socket.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from channels.exceptions import AcceptConnection, DenyConnection, StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from gateway_site import outage
from gateway_site.auth import refuse_websocket
from gateway_site.dispatch import run_consumer
from gateway_site.errors import ApiError

logger = logging.getLogger("gateway.sockets")

CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013


class ContainedWebsocketConsumer(AsyncWebsocketConsumer):
    """The base of the gateway's sockets; a subclass's `disconnect(code)` must be safe to call more than once."""

    accepted = False

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        self.accepted = True

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The channel-layer receive runs beside the handlers; in Redis mode it fails when Redis goes down, and the
        socket then ends as a failed handler would, instead of the exception reaching the server."""
        unavailable = await outage.unless_unavailable(run_consumer(self, scope, receive, send))
        if unavailable is not None:
            await self._give_up(unavailable, CLOSE_TRY_AGAIN_LATER)

    async def dispatch(self, message: dict[str, Any]) -> None:
        try:
            if message["type"] == "websocket.receive":
                # Channels would first run close_old_connections in a worker thread, a thread hop per frame. A frame
                # reaches the database only through database_sync_to_async, which does that itself.
                await self.websocket_receive(message)
            else:
                await super().dispatch(message)
        except (StopConsumer, AcceptConnection, DenyConnection):
            raise
        except Exception as exc:
            await self.handler_failed(exc, str(message.get("type", "")))
            if message.get("type") == "websocket.disconnect":
                raise StopConsumer() from None  # the client is gone: nothing is left to wait for

    async def handler_failed(self, exc: Exception, what: str) -> None:
        """A handler (or work the socket runs beside its handlers) raised `exc`: end the socket as documented."""
        unavailable = outage.unavailable(exc)
        if unavailable is not None:
            await self._give_up(unavailable, CLOSE_TRY_AGAIN_LATER)
            return
        logger.exception(
            "socket handler failed",
            exc_info=exc,
            extra={"fields": {"path": self.scope.get("path", ""), "message": what}},
        )
        await self._give_up(ApiError("internal_error", status=500), CLOSE_INTERNAL_ERROR)

    async def _give_up(self, refusal: ApiError, close_code: int) -> None:
        """Release what the socket holds, then close it with `close_code`, or refuse the upgrade with `refusal`."""
        with contextlib.suppress(Exception):
            await self.disconnect(close_code)
        with contextlib.suppress(Exception):
            if self.accepted:
                await self.close(code=close_code)
            else:
                await refuse_websocket(self, refusal)
