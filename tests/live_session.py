"""A live encrypted session driven over real HTTP, SSE and WebSocket (docs/protocol/relay.md, docs/protocol/e2ee.md):
the client's event stream reader, the agent simulator's loop and the client's handshake, shared by the live tests."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.e2ee import AgentSide, ClientSide
from tests.oauth_helpers import live_sign_in


async def sign_in(http: httpx.AsyncClient, email: str, scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {await live_sign_in(http, email, scope)}"}


class Events:
    """A session event stream read in the background: (id, event, data) tuples."""

    def __init__(self, http: httpx.AsyncClient, sid: str, headers: dict[str, str]) -> None:
        self.http, self.sid, self.headers = http, sid, headers
        self.queue: asyncio.Queue = asyncio.Queue()
        self.ended = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        opened = asyncio.Event()

        async def run() -> None:
            async with self.http.stream(
                "GET", f"/gateway/v1/sessions/{self.sid}/events", headers=self.headers
            ) as response:
                assert response.status_code == 200
                opened.set()
                buffer = ""
                async for text in response.aiter_text():
                    buffer += text
                    while "\n\n" in buffer:
                        block, buffer = buffer.split("\n\n", 1)
                        fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
                        if "data" in fields:
                            await self.queue.put((fields.get("id"), fields.get("event"), json.loads(fields["data"])))
            self.ended.set()

        self.task = asyncio.ensure_future(run())
        await asyncio.wait_for(opened.wait(), timeout=10)

    async def next(self) -> tuple:
        return await asyncio.wait_for(self.queue.get(), timeout=10)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


async def agent_loop(ws, keys: AgentSide, acks: dict) -> None:
    """The agent simulator: acks handshakes over HTTP (by its owner's token) and WS, answers each message."""
    async for text in ws:
        frame = json.loads(text)
        if frame["type"] == "session.handshake.request":
            ack = keys.ack(frame)
            response = await acks["http"].post(
                f"/gateway/v1/sessions/{frame['session_id']}/handshake/agent-ack", json=ack, headers=acks["headers"]
            )
            assert response.status_code == 202, response.text
            await ws.send(
                json.dumps({"type": "session.handshake.ack", "status": "ok", "session_id": frame["session_id"], **ack})
            )
        elif frame["type"] == "session.message":
            prompt = keys.read(frame)["prompt"]
            sid, mid = frame["session_id"], frame["message_id"]
            await ws.send(json.dumps(keys.reply(sid, "session.progress", mid, {"status": "running"})))
            await ws.send(json.dumps(keys.reply(sid, "session.result", mid, {"result": f"echo: {prompt}", "turns": 1})))


async def handshake(http, headers, client: ClientSide, keys: AgentSide) -> None:
    init = await http.post(
        f"/gateway/v1/sessions/{client.session_id}/handshake/client-init", json=client.init_body(), headers=headers
    )
    assert init.status_code == 202
    for _ in range(100):  # the desktop polls every 500 ms
        hs = (
            await http.get(f"/gateway/v1/sessions/{client.session_id}/handshake/{client.handshake_id}", headers=headers)
        ).json()
        if hs["status"] == "agent_acknowledged":
            break
        await asyncio.sleep(0.05)
    identity = (await http.get(f"/gateway/v1/devices/{client.device_id}/identity-key", headers=headers)).json()[
        "public_key"
    ]
    assert identity == keys.identity_b64
    client.complete(hs, identity)
