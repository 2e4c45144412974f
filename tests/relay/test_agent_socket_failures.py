"""gateway_site.contained on the agent socket: an unexpected failure inside a handler is contained. Before the
upgrade the client gets `500 {"error":"internal_error"}` (docs/protocol/relay.md §5.1); after it the socket closes
with 1011 and the consumer gives back what it held: the device goes offline and nothing stays registered."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from gateway_site.lifecycle import lifecycle
from relay import agent_frames
from relay import services as relay_services
from relay.registry import agents
from relay.stores import presence
from tests.relay_helpers import AgentSocket, register, token_for

pytestmark = pytest.mark.django_db(transaction=True)


def boom(*args, **kwargs):
    raise RuntimeError("injected failure")


async def closed_with(socket) -> int:
    message = await socket.recv_raw()
    assert message["type"] == "websocket.close", message
    return message["code"]


async def test_a_failing_agent_frame_closes_with_1011_and_takes_the_device_offline(monkeypatch):
    await sync_to_async(register)("dev_fail0001", "owner-1")
    before = lifecycle.live_count()
    agent = AgentSocket(application, token_for("owner-1"), "dev_fail0001")
    await agent.open()
    assert await presence.get("dev_fail0001") is not None and lifecycle.live_count() == before + 1
    monkeypatch.setattr(agent_frames, "_outcome", boom)
    await agent.send({"type": "session.progress", "session_id": "00000000-0000-4000-8000-000000000000", "seq": 1})
    assert await closed_with(agent) == 1011
    assert await presence.get("dev_fail0001") is None and agents.get("dev_fail0001") is None
    assert lifecycle.live_count() == before
    await agent.close()


async def test_a_failing_device_lookup_is_a_500_internal_error(monkeypatch):
    await sync_to_async(register)("dev_fail0002", "owner-1")
    monkeypatch.setattr(relay_services, "agent_admit", boom)
    agent = AgentSocket(application, token_for("owner-1"), "dev_fail0002")
    assert not await agent.connect()
    assert agent.denial == (500, {"error": "internal_error"})
    assert await presence.get("dev_fail0002") is None
