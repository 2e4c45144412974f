"""A minimal relay written directly on ASGI (no Django, no Channels): the benchmark's baseline.

It does the least a relay must do for measurements 1 and 2 — take a JSON frame over HTTP and write it to the agent's
WebSocket; take the agent's frames and stream them to SSE subscribers with ids — so the gateway's numbers can be read
as a ratio to what the server itself allows. No auth, no persistence, no validation beyond the envelope's seq.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

agent_send: Any = None
subscribers: dict[str, set[asyncio.Queue[bytes]]] = {}
last_seq: dict[str, int] = {}
event_id = 0


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope.get("path", "")
    if scope["type"] == "websocket" and path == "/b/agent":
        await _agent(receive, send)
    elif scope["type"] == "http" and path.startswith("/b/sessions/") and path.endswith("/messages"):
        await _message(path.split("/")[3], receive, send)
    elif scope["type"] == "http" and path.startswith("/b/sessions/") and path.endswith("/events"):
        await _events(path.split("/")[3], receive, send)
    elif scope["type"] == "http" and path == "/b/ping":
        await _respond(send, 200, b"{}")  # the loader's ceiling: the least a server can answer
    elif scope["type"] == "http":
        await _respond(send, 404, b'{"error":"Not Found"}')


async def _agent(receive: Any, send: Any) -> None:
    global agent_send, event_id
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    agent_send = send
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            agent_send = None
            return
        text = message.get("text") or (message.get("bytes") or b"").decode()
        frame = json.loads(text)
        sid = frame.get("session_id", "")
        event_id += 1
        chunk = f"id: {event_id}\nevent: session.event\ndata: {json.dumps(frame, separators=(',', ':'))}\n\n".encode()
        for queue in subscribers.get(sid, ()):
            queue.put_nowait(chunk)  # unbounded: the baseline measures what the server allows, nothing more


async def _message(sid: str, receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    frame = json.loads(body)
    seq = frame.get("seq")
    if frame.get("encrypted") is not True or not isinstance(seq, int) or seq <= last_seq.get(sid, 0):
        await _respond(send, 409, b'{"error":"replay_detected"}')
        return
    last_seq[sid] = seq
    if agent_send is None:
        await _respond(send, 503, b'{"error":"agent_unavailable"}')
        return
    await agent_send({"type": "websocket.send", "text": json.dumps(frame, separators=(",", ":"))})
    await _respond(send, 202, b'{"status":"forwarded_to_agent"}')


async def _events(sid: str, receive: Any, send: Any) -> None:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    subscribers.setdefault(sid, set()).add(queue)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": b":connected\n\n", "more_body": True})

    async def pump() -> None:
        while True:
            await send({"type": "http.response.body", "body": await queue.get(), "more_body": True})

    task = asyncio.ensure_future(pump())
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    finally:
        task.cancel()
        subscribers[sid].discard(queue)


async def _respond(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
