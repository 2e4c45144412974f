"""Let Daphne send every close code a WebSocket server may send.

Daphne closes sockets through autobahn's `sendClose`, which accepts only 1000 and 3000-4999: an application's
`websocket.close` with 1008 (policy violation) or 1012 (service restart) raises inside Daphne and the socket is never
closed (docs/platform-notes.md §7). RFC 6455 §7.4.1 lets a server send those codes, and our clients act on them
(1012: reconnect), so Daphne's `serverClose` is given the protocol-level close frame for them. Nothing changes for
codes autobahn already accepts, nor under any other server.
"""

from __future__ import annotations

from typing import Any

# Codes an endpoint may send in a close frame (RFC 6455 §7.4.1 and the IANA registry), besides 1000 and 3000-4999.
PROTOCOL_CLOSE_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def install() -> None:
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not installed: nothing to adapt
        return
    if getattr(WebSocketProtocol, "gateway_close_codes", False):
        return
    upstream = WebSocketProtocol.serverClose

    def server_close(self: Any, code: int | None = None) -> None:
        if code in PROTOCOL_CLOSE_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            upstream(self, code)

    WebSocketProtocol.serverClose = server_close
    WebSocketProtocol.gateway_close_codes = True
