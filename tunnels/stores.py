"""Which tunnel socket holds a route, for every process (docs/architecture.md, "Delivery across processes").

In memory mode the one process's tunnel registry (tunnels.registry) is the whole table, and nothing here is used.
With STATE_BACKEND=redis a route's binding names the process and the connection of the socket that activated it,
so that ingress on any process can send the webhook there:

    <p>route:<route_id>    JSON [node id, connection id, device id]

Taking a route over returns the binding it replaced (that socket is told `superseded`); releasing it is a
compare-and-delete, so a socket that lost the route to another one cannot remove the newer binding.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from django.conf import settings

from gateway_site import redis_state

_TAKE = """
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
return previous
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class RouteBinding(NamedTuple):
    node_id: str
    connection_id: str
    device_id: str

    def dumps(self) -> str:
        return json.dumps(list(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes | None) -> RouteBinding | None:
        if not raw:
            return None
        node_id, connection_id, device_id = json.loads(raw)
        return cls(str(node_id), str(connection_id), str(device_id))


class RedisRouteBindings:
    def __init__(self, url: str | None = None, *, prefix: str = "gw:") -> None:
        self.url = url or settings.GATEWAY.redis_url
        self.prefix = prefix

    def _key(self, route_id: str) -> str:
        return f"{self.prefix}route:{route_id}"

    async def take(self, route_id: str, binding: RouteBinding) -> RouteBinding | None:
        """Bind the route to `binding`; returns the binding it had before (None when it had none)."""
        client = redis_state.client(self.url)
        previous = await client.eval(_TAKE, 1, self._key(route_id), binding.dumps())
        return RouteBinding.loads(previous)

    async def release(self, route_id: str, binding: RouteBinding) -> bool:
        """Unbind the route only if `binding` still holds it; True when it did."""
        client = redis_state.client(self.url)
        return bool(await client.eval(_RELEASE, 1, self._key(route_id), binding.dumps()))

    async def get(self, route_id: str) -> RouteBinding | None:
        return RouteBinding.loads(await redis_state.client(self.url).get(self._key(route_id)))
