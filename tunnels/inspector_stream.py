"""`GET /gateway/v1/integrations/routes/{route_id}/requests/events` (docs/protocol/webhooks.md §2): an event `request`
for every new or changed record of the route, and a `:heartbeat` comment every 15 s. The stream counts against the
owner's cap of open streams (gateway_site.sse) and listens on the route's channel layer group, which every process
publishes to (tunnels.inspector.publish)."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway_site.auth import principal_from_scope
from gateway_site.sse import SseConsumer, comment_bytes, event_bytes
from tunnels import inspector, requests

HEARTBEAT_SECONDS = 15


class RequestEventsConsumer(SseConsumer):
    stream_kind = "requests"
    route_id = ""

    async def open_stream(self) -> None:
        principal = principal_from_scope(self.scope)
        route_id = await requests.owned_route(principal, self.scope["url_route"]["kwargs"]["route_id"])
        self.route_id = route_id
        inspector.listen(route_id, self)
        await self.join_group(inspector.events_group(route_id))
        await self.start_stream(principal.uid)
        await self.write(comment_bytes("connected"))
        self.start_task(self._heartbeat())

    async def leave_groups(self) -> None:
        if self.route_id:
            inspector.unlisten(self.route_id, self)
        await super().leave_groups()

    async def inspector_request(self, message: dict[str, Any]) -> None:
        if self.streaming:
            await self.write(event_bytes("request", message["record"]))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self.write(comment_bytes("heartbeat"))
