"""The vectors of the public clients driven through the gateway: the exact client-init, acks and frames
(tests/vectors/handshake.json, frames.json, negative.json), checked byte for byte where the gateway relays them."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from tests.e2ee import DecryptError, open_frame, unb64
from tests.helpers import vector
from tests.relay_helpers import AgentSocket, Stream, bearer, http_client, register, token_for

pytestmark = pytest.mark.django_db(transaction=True)

HANDSHAKE = vector("handshake.json")
FRAMES = vector("frames.json")
NEGATIVE = vector("negative.json")
INPUTS = HANDSHAKE["inputs"]
WIRE = HANDSHAKE["wire"]
SESSION = INPUTS["session_id"]
DEVICE = INPUTS["device_id"]
OWNER = token_for("owner-1", email="owner@example.com")


@pytest.fixture
async def device():
    await sync_to_async(register)(
        DEVICE, "owner-1", email="owner@example.com", key=INPUTS["agent_identity_public_key_b64"]
    )


async def acknowledged_session(http, agent: AgentSocket) -> dict:
    """client-init with the vector body, the agent's HTTP ack; returns the handshake as the client reads it."""
    init = await http.post(
        f"/gateway/v1/sessions/{SESSION}/handshake/client-init",
        json=WIRE["client_init_request_body"],
        headers=bearer(OWNER),
    )
    assert init.status_code == 202, init.text
    request = await agent.recv()
    assert request == {
        "type": "session.handshake.request",
        "session_id": SESSION,
        **{
            k: WIRE["client_init_request_body"][k]
            for k in (
                "handshake_id",
                "conversation_id",
                "device_id",
                "client_ephemeral_public_key",
                "client_session_nonce",
            )
        },
    }
    ack = await http.post(
        f"/gateway/v1/sessions/{SESSION}/handshake/agent-ack",
        json=WIRE["agent_ack_http_request_body"],
        headers=bearer(OWNER),
    )
    assert (ack.status_code, ack.json()["status"]) == (202, "agent_acknowledged")
    hs = await http.get(f"/gateway/v1/sessions/{SESSION}/handshake/{INPUTS['handshake_id']}", headers=bearer(OWNER))
    return hs.json()


async def test_the_vector_handshake(device):
    agent = AgentSocket(application, OWNER, DEVICE)
    await agent.open()
    async with http_client(application) as http:
        init = await http.post(
            f"/gateway/v1/sessions/{SESSION}/handshake/client-init",
            json=WIRE["client_init_request_body"],
            headers=bearer(OWNER),
        )
        body = init.json()
        assert (init.status_code, body["status"], body["relay_status"]) == (
            202,
            "pending_agent_ack",
            "forwarded_to_agent",
        )
        assert (
            body["conversation_id"] == INPUTS["conversation_id"]
            and "relay_error" not in body
            and "last_error" not in body
        )
        await agent.recv()
        ack = await http.post(
            f"/gateway/v1/sessions/{SESSION}/handshake/agent-ack",
            json=WIRE["agent_ack_http_request_body"],
            headers=bearer(OWNER),
        )
        assert ack.json() == {
            "status": "agent_acknowledged",
            "session_id": SESSION,
            "sessionId": SESSION,
            "handshake_id": INPUTS["handshake_id"],
            "handshakeId": INPUTS["handshake_id"],
            "conversation_id": INPUTS["conversation_id"],
            "conversationId": INPUTS["conversation_id"],
        }
        hs = (
            await http.get(f"/gateway/v1/sessions/{SESSION}/handshake/{INPUTS['handshake_id']}", headers=bearer(OWNER))
        ).json()
    assert hs["status"] == "agent_acknowledged" and hs["last_error"] == ""
    assert hs["agent_ephemeral_public_key"] == INPUTS["agent_ephemeral_public_key_b64"]
    assert hs["agent_identity_signature"] == HANDSHAKE["signature"]["agent_identity_signature_b64"]
    assert hs["transcript_hash"] == HANDSHAKE["transcript"]["transcript_hash_b64"]
    # The WebSocket copy of the same ack is accepted too and becomes the second event.
    await agent.send(WIRE["agent_ack_ws_frame_without_transport_fields"])
    assert await agent.nothing()
    stream = Stream(application, f"/gateway/v1/sessions/{SESSION}/events", OWNER)
    assert await stream.open() == 200
    raw = await stream.read_until(b"}\n\n")
    raw += await stream.read_until(b"}\n\n")
    blocks = [b for b in raw.decode().split("\n\n") if b]
    assert blocks[0] == ":connected"
    first, second = (json.loads(b.split("data: ", 1)[1]) for b in blocks[1:])
    assert first["type"] == second["type"] == "session.handshake.ack"
    assert first["status"] == second["status"] == "agent_acknowledged"
    assert second["gateway_ack_posted"] is True
    await stream.close()
    await agent.close()


async def test_vector_frames_relay_untouched_in_both_directions(device):
    agent = AgentSocket(application, OWNER, DEVICE)
    await agent.open()
    async with http_client(application) as http:
        await acknowledged_session(http, agent)
        stream = Stream(application, f"/gateway/v1/sessions/{SESSION}/events", OWNER)
        await stream.open()
        await stream.read_until(b"}\n\n")  # the ack event
        for case in FRAMES["cases"]:
            envelope = case["envelope"]
            if case["envelope_kind"].startswith("POST"):
                response = await http.post(
                    f"/gateway/v1/sessions/{SESSION}/messages", json=envelope, headers=bearer(OWNER)
                )
                assert response.status_code == 202, (case["name"], response.text)
                delivered = await agent.recv()
                for key, value in envelope.items():
                    assert delivered[key] == value, (case["name"], key)  # alg, nonce, tag, aad, seq untouched
                assert (
                    delivered["requester_uid"] == "owner-1" and delivered["requester"]["email"] == "owner@example.com"
                )
                plain = open_frame(unb64(case["key_b64"]), delivered, "client_to_agent")
                assert plain == case["plaintext_utf8"]
            elif case["envelope_kind"].startswith("agent WebSocket"):
                await agent.send(envelope)
                raw = await stream.read_until(b"}\n\n")
                data = json.loads(raw.decode().split("data: ", 1)[1])
                assert data == envelope, case["name"]
                assert open_frame(unb64(case["key_b64"]), data, "agent_to_client") == case["plaintext_utf8"]
        await stream.close()
    await agent.close()


async def test_the_empty_ciphertext_case_is_refused(device):
    case = next(c for c in FRAMES["cases"] if "empty plaintext" in c["name"])
    agent = AgentSocket(application, OWNER, DEVICE)
    await agent.open()
    async with http_client(application) as http:
        await acknowledged_session(http, agent)
        frame = {**case["envelope"], "type": "session.result", "session_id": SESSION, "encrypted": True}
        await agent.send(frame)
        response = await http.post(
            f"/gateway/v1/sessions/{SESSION}/messages",
            json={**case["envelope"], "direction": "client_to_agent", "encrypted": True},
            headers=bearer(OWNER),
        )
        assert response.status_code == 400
        assert response.json()["violation"] == "missing_ciphertext"
        # Nothing but the ack reached the backlog.
        stream = Stream(application, f"/gateway/v1/sessions/{SESSION}/events", OWNER)
        await stream.open()
        raw = await stream.read_until(b"}\n\n")
        assert b"session.handshake.ack" in raw and await stream.io.receive_nothing(0.3)
        await stream.close()
    await agent.close()


@pytest.mark.parametrize("case", [c for c in NEGATIVE["cases"] if "frame" in c], ids=lambda c: c["name"])
async def test_tampered_frames_are_relayed_but_refused_by_the_receiver(device, case):
    """The gateway cannot read frames, so it relays a tampered one; the receiving client's check refuses it."""
    agent = AgentSocket(application, OWNER, DEVICE)
    await agent.open()
    async with http_client(application) as http:
        await acknowledged_session(http, agent)
        stream = Stream(application, f"/gateway/v1/sessions/{SESSION}/events", OWNER)
        await stream.open()
        await stream.read_until(b"}\n\n")
        frame = case["frame"]
        if frame["type"] == "session.message":
            await http.post(f"/gateway/v1/sessions/{SESSION}/messages", json=frame, headers=bearer(OWNER))
            relayed = await agent.recv()
            with pytest.raises(DecryptError):
                open_frame(unb64(case["key_b64"]), relayed, "agent_to_client")
        else:
            await agent.send(frame)
            relayed = json.loads((await stream.read_until(b"}\n\n")).decode().split("data: ", 1)[1])
            with pytest.raises(DecryptError):
                open_frame(unb64(case["key_b64"]), relayed, "agent_to_client")
        await stream.close()
    await agent.close()


async def test_signature_over_another_transcript_is_refused(device):
    case = next(c for c in NEGATIVE["cases"] if "transcript_hash_b64" in c)
    await sync_to_async(register)("dev_negative1", "owner-1", key=case["agent_identity_public_key_b64"])
    async with http_client(application) as http:
        body = {**WIRE["client_init_request_body"], "device_id": "dev_negative1"}
        await http.post("/gateway/v1/sessions/sess_neg1/handshake/client-init", json=body, headers=bearer(OWNER))
        ack = {
            **WIRE["agent_ack_http_request_body"],
            "device_id": "dev_negative1",
            "transcript_hash": case["transcript_hash_b64"],
            "agent_identity_signature": case["agent_identity_signature_b64"],
        }
        response = await http.post(
            "/gateway/v1/sessions/sess_neg1/handshake/agent-ack", json=ack, headers=bearer(OWNER)
        )
        assert (response.status_code, response.json()) == (400, {"error": "transcript hash mismatch"})
        hs = await http.get(f"/gateway/v1/sessions/sess_neg1/handshake/{INPUTS['handshake_id']}", headers=bearer(OWNER))
        assert hs.json()["status"] != "agent_acknowledged"
