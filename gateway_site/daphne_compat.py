"""Two adjustments to Daphne, applied when the gateway's ASGI module loads (they change nothing under other servers).

Close codes. Daphne closes sockets through autobahn's `sendClose`, which accepts only 1000 and 3000-4999: an
application's `websocket.close` with 1008 (policy violation) or 1012 (service restart) raises inside Daphne and the
socket is never closed (docs/platform-notes.md §7). RFC 6455 §7.4.1 lets a server send those codes, and our clients
act on them (1012: reconnect), so Daphne's `serverClose` is given the protocol-level close frame for them. Nothing
changes for codes autobahn already accepts, nor under any other server.

Request bodies. Daphne receives the whole body first (Twisted keeps it in a temporary file past 100 kB), then reads
all of it into the application's input queue at once, before the application has run: 150 concurrent 5 MiB webhooks
held 750 MiB although the gateway answered each with 404 without reading (docs/performance.md, memory under attack).
Here the queue keeps only where each chunk lies in that file and reads it when the application asks for it, so a
body the application never reads never comes into memory.

Form parsing. Twisted parses every POST with a form content type into `request.args` before Daphne sees it (a copy
Daphne never uses: the application parses bodies itself), and answers a multipart body it cannot parse with its own
plain-text 400 and a closed connection. Turned off, a webhook with a form body (Slack's slash commands are
url-encoded) reaches its tunnel byte for byte whatever it contains, and ingress no longer pays for the parse (about
13% of a Daphne webhook's time in the profile, docs/performance.md).
"""

from __future__ import annotations

from collections import deque
from typing import Any

# Codes an endpoint may send in a close frame (RFC 6455 §7.4.1 and the IANA registry), besides 1000 and 3000-4999.
PROTOCOL_CLOSE_CODES = frozenset({1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def install() -> None:
    try:
        from daphne.http_protocol import WebRequest
        from daphne.server import Server
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:  # not installed: nothing to adapt
        return
    if getattr(WebSocketProtocol, "gateway_close_codes", False):
        return
    _install_close_codes(WebSocketProtocol)
    _install_lazy_bodies(Server)
    _install_no_form_parsing(WebRequest)


def _install_close_codes(WebSocketProtocol: Any) -> None:  # noqa: N803 - a class
    upstream = WebSocketProtocol.serverClose

    def server_close(self: Any, code: int | None = None) -> None:
        if code in PROTOCOL_CLOSE_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            upstream(self, code)

    WebSocketProtocol.serverClose = server_close
    WebSocketProtocol.gateway_close_codes = True


class BodyChunk:
    """Where one `http.request` chunk lies in the request's content file."""

    __slots__ = ("length", "more_body", "offset")

    def __init__(self, offset: int, length: int, more_body: bool) -> None:
        self.offset, self.length, self.more_body = offset, length, more_body


def read_lazily(queue: Any, request: Any) -> None:
    """Make Daphne's input `queue` for `request` keep chunk positions instead of chunk bytes.

    asyncio.Queue stores items through `_put` and hands them out through `_get`, both looked up on the instance, so
    the application's `receive` (the queue's `get`, bound before this runs) sees the materialised messages.
    """
    items: deque[Any] = queue._queue
    position = 0

    def put(item: dict[str, Any]) -> None:
        nonlocal position
        if item.get("type") == "http.request":
            length = len(item.get("body", b""))
            items.append(BodyChunk(position, length, bool(item.get("more_body"))))
            position += length
        else:
            items.append(item)

    def get() -> dict[str, Any]:
        item = items.popleft()
        if not isinstance(item, BodyChunk):
            return dict(item)
        content = getattr(request, "content", None)
        if content is None or content.closed:  # the connection went away meanwhile
            return {"type": "http.disconnect"}
        content.seek(item.offset)
        return {"type": "http.request", "body": content.read(item.length), "more_body": item.more_body}

    queue._put = put
    queue._get = get


def _install_lazy_bodies(Server: Any) -> None:  # noqa: N803 - a class
    upstream = Server.create_application

    def create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> Any:
        queue = upstream(self, protocol, scope)
        if queue is not None and scope.get("type") == "http" and hasattr(protocol, "content"):
            read_lazily(queue, protocol)
        return queue

    Server.create_application = create_application


def _install_no_form_parsing(WebRequest: Any) -> None:  # noqa: N803 - a class
    upstream = WebRequest.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        upstream(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False  # twisted.web.http.Request's switch, read in requestReceived

    WebRequest.__init__ = init
