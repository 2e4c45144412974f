from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import BaseChannelLayer

class AsyncConsumer:
    channel_layer_alias: str
    scope: dict[str, Any]
    channel_layer: BaseChannelLayer
    channel_name: str
    channel_receive: Any
    base_send: Callable[[dict[str, Any]], Awaitable[None]]
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None: ...
    async def dispatch(self, message: dict[str, Any]) -> None: ...
    async def send(self, message: dict[str, Any]) -> None: ...
    # An ASGI application; typed Any because Channels routes it with django.urls.path, whose stubs expect a view.
    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> Any: ...
