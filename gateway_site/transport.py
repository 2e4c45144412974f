"""How many response bytes a server still holds for one connection, whatever the ASGI server.

A reader that stops reading an event stream makes the server buffer what the application sends. uvicorn applies
back-pressure (its `send` waits above a small high-water mark); Daphne does not, and buffers without limit inside
Twisted (docs/platform-notes.md §3). To cut such a reader at a byte budget under both (decisions.md H3), the stream
asks a probe for the bytes the server's transport has not yet written, and can abort the connection, which frees
them. The probe is found from the server's own `send` callable, captured by the outermost ASGI layer.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

SCOPE_KEY = "gateway.transport"


class TransportProbe(Protocol):
    def pending(self) -> int: ...

    def abort(self) -> None: ...


class AsyncioProbe:
    """uvicorn: an asyncio transport (public API)."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def pending(self) -> int:
        return int(self.transport.get_write_buffer_size())

    def abort(self) -> None:
        self.transport.abort()


class TwistedProbe:
    """Daphne: a Twisted TCP transport, whose unsent bytes sit in `dataBuffer` (from `offset`) and in
    `_tempDataBuffer` (`_tempDataLen` bytes) until the socket takes them."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def pending(self) -> int:
        transport = self.transport
        buffered = len(getattr(transport, "dataBuffer", b"")) - int(getattr(transport, "offset", 0))
        return buffered + int(getattr(transport, "_tempDataLen", 0))

    def abort(self) -> None:
        transport = self.transport
        transport.abortConnection()
        # Twisted keeps the unsent bytes on the transport object after an abort, until the object itself goes;
        # drop them now, so the memory a stalled reader held is free at once.
        transport.dataBuffer = b""
        transport.offset = 0
        transport._tempDataBuffer = []
        transport._tempDataLen = 0


def probe_for(send: Any) -> TransportProbe | None:
    """The probe behind a server's `send`, or None for a server we cannot see into (the stream then relies on the
    bytes it queues itself)."""
    owner = getattr(send, "__self__", None)
    transport = getattr(owner, "transport", None)
    if transport is not None and hasattr(transport, "get_write_buffer_size"):
        return AsyncioProbe(transport)
    if isinstance(send, functools.partial) and send.args:
        channel = getattr(send.args[0], "channel", None)
        transport = getattr(channel, "transport", None)
        if transport is not None and hasattr(transport, "abortConnection") and hasattr(transport, "dataBuffer"):
            return TwistedProbe(transport)
    return None
