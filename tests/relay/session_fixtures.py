"""Shared set-up for session tests: a device with a real identity, an agent simulator, acknowledged sessions."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from tests.e2ee import AgentSide, ClientSide
from tests.relay_helpers import AgentSocket, bearer, register, token_for

OWNER = token_for("owner-1", email="owner@example.com")
DEVICE = "dev_sessions0001"


@dataclass
class Live:
    http: object
    agent: AgentSocket
    keys: AgentSide
    client: ClientSide

    @property
    def sid(self) -> str:
        return self.client.session_id


async def make_device(device_id: str = DEVICE) -> AgentSide:
    keys = AgentSide.new()
    await sync_to_async(register)(device_id, "owner-1", email="owner@example.com", key=keys.identity_b64)
    return keys


async def handshake(
    http, agent: AgentSocket, keys: AgentSide, *, token: str = OWNER, device_id: str = DEVICE
) -> ClientSide:
    """A full handshake as the desktop and the agent perform it; returns the client half with derived keys."""
    client = ClientSide.new(str(uuid.uuid4()), str(uuid.uuid4()), device_id)
    init = await http.post(
        f"/gateway/v1/sessions/{client.session_id}/handshake/client-init",
        json=client.init_body(),
        headers=bearer(token),
    )
    assert init.status_code == 202, init.text
    request = await agent.recv()
    assert request["type"] == "session.handshake.request"
    ack = keys.ack(request)
    response = await http.post(
        f"/gateway/v1/sessions/{client.session_id}/handshake/agent-ack", json=ack, headers=bearer(OWNER)
    )
    assert response.status_code == 202, response.text
    hs = await http.get(
        f"/gateway/v1/sessions/{client.session_id}/handshake/{client.handshake_id}", headers=bearer(token)
    )
    client.complete(hs.json(), keys.identity_b64)
    return client


async def open_agent(device_id: str = DEVICE) -> AgentSocket:
    agent = AgentSocket(application, OWNER, device_id)
    await agent.open()
    return agent
