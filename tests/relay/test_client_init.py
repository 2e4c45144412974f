"""`POST …/handshake/client-init` and `GET …/handshake/{id}` (docs/protocol/relay.md §4.1-4.2,
docs/protocol/decisions.md R5)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from relay import sessions as relay_sessions
from tests.e2ee import ClientSide
from tests.relay.session_fixtures import DEVICE, OWNER, make_device, open_agent
from tests.relay_helpers import bearer, http_client, register, token_for
from tests.shares_helpers import BOB, EVE, shared_device

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "zY++EJfS+1RqnBvK+5wAOKlyQqMxyvlENYEvCqkqdBU="


def body(**overrides):
    base = {
        "handshake_id": "hs_1234",
        "device_id": DEVICE,
        "client_ephemeral_public_key": KEY,
        "client_session_nonce": "bm9uY2U=",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


async def init(http, sid="sess_1234", token=OWNER, **overrides):
    return await http.post(
        f"/gateway/v1/sessions/{sid}/handshake/client-init", json=body(**overrides), headers=bearer(token)
    )


@pytest.mark.parametrize(
    ("sid", "overrides", "message"),
    [
        ("xx", {}, "invalid session_id"),
        ("sess_1", {"device_id": None}, "device_id is required"),
        ("sess_1", {"device_id": "d!"}, "invalid device_id"),
        ("sess_1", {"client_session_nonce": "  "}, "device_id, handshake_id, and client_session_nonce are required"),
        ("sess_1", {"handshake_id": None}, "handshake_id is required"),
        ("sess_1", {"handshake_id": "h"}, "invalid handshake_id"),
        ("sess_1", {"conversation_id": "c c"}, "invalid conversation_id"),
        ("sess_1", {"client_ephemeral_public_key": "AAAA"}, "invalid ephemeral public key"),
        ("sess_1", {"client_ephemeral_public_key": KEY.rstrip("=")}, "invalid ephemeral public key"),
        ("sess_1", {"client_ephemeral_public_key": KEY.replace("+", "-")}, "invalid ephemeral public key"),
        ("sess_1", {"client_ephemeral_public_key": 5}, "invalid ephemeral public key"),
    ],
)
async def test_validation_in_order(sid, overrides, message):
    async with http_client(application) as http:
        response = await init(http, sid, **overrides)
    assert (response.status_code, response.json()) == (400, {"error": message})


async def test_body_must_be_a_json_object():
    async with http_client(application) as http:
        for content, ctype in [("[1]", "application/json"), ("{", "application/json"), ("{}", "text/plain")]:
            response = await http.post(
                "/gateway/v1/sessions/sess_1/handshake/client-init",
                content=content,
                headers={**bearer(OWNER), "Content-Type": ctype},
            )
            assert (response.status_code, response.json()) == (400, {"error": "invalid request body"})


async def test_unknown_device_and_stranger():
    await make_device()
    async with http_client(application) as http:
        assert (await init(http, device_id="dev_unknown")).json() == {"error": "device not found"}
        response = await init(http, token=EVE)
        assert (response.status_code, response.json()) == (403, {"error": "forbidden"})


async def test_agent_offline_answers_pending_agent_connection():
    await make_device()
    async with http_client(application) as http:
        response = await init(http, conversation_id=None)
    assert response.status_code == 202
    assert response.json() == {
        "status": "pending_agent_connection",
        "session_id": "sess_1234",
        "sessionId": "sess_1234",
        "handshake_id": "hs_1234",
        "handshakeId": "hs_1234",
        "conversation_id": "conv_sess_1234",
        "conversationId": "conv_sess_1234",
        "relay_status": "pending_agent_connection",
        "device_id": DEVICE,
        "deviceId": DEVICE,
        "client_ephemeral_public_key": KEY,
        "client_session_nonce": "bm9uY2U=",
        "relay_error": "agent_not_connected",
        "last_error": "agent_not_connected",
    }


async def test_pending_request_is_delivered_when_the_agent_connects():
    await make_device()
    async with http_client(application) as http:
        await init(http)
        agent = await open_agent()
        request = await agent.recv()
        assert request["type"] == "session.handshake.request" and request["session_id"] == "sess_1234"
        hs = (await http.get("/gateway/v1/sessions/sess_1234/handshake/hs_1234", headers=bearer(OWNER))).json()
        assert hs["status"] == "pending_agent_ack" and hs["last_error"] == ""
        # A second connection gets it again (the first did not answer) ...
        second = await open_agent()
        assert (await second.recv())["session_id"] == "sess_1234"
        # ... but the same socket never gets it twice, however often the client polls (R5).
        from relay import handshake

        handshake.RESEND_AFTER_SECONDS, saved = 0, handshake.RESEND_AFTER_SECONDS
        try:
            for _ in range(3):
                await http.get("/gateway/v1/sessions/sess_1234/handshake/hs_1234", headers=bearer(OWNER))
        finally:
            handshake.RESEND_AFTER_SECONDS = saved
        assert await second.nothing()
        await second.close()


async def test_online_agent_answers_forwarded():
    await make_device()
    agent = await open_agent()
    async with http_client(application) as http:
        body_ = (await init(http, conversation_id="conv_x1")).json()
    assert (body_["status"], body_["relay_status"]) == ("pending_agent_ack", "forwarded_to_agent")
    assert "relay_error" not in body_ and "last_error" not in body_
    request = await agent.recv()
    assert request == {
        "type": "session.handshake.request",
        "session_id": "sess_1234",
        "handshake_id": "hs_1234",
        "conversation_id": "conv_x1",
        "device_id": DEVICE,
        "client_ephemeral_public_key": KEY,
        "client_session_nonce": "bm9uY2U=",
    }
    await agent.close()


async def test_repeat_is_idempotent_and_conflicts_are_409():
    await make_device()
    async with http_client(application) as http:
        assert (await init(http)).status_code == 202
        assert (await init(http)).status_code == 202
        assert (await init(http, client_session_nonce="b3RoZXI=")).json() == {
            "error": "handshake_id already exists with different payload"
        }
        assert (await init(http, handshake_id="hs_other")).status_code == 409
        response = await init(http, conversation_id="conv_other")
        assert (response.status_code, response.json()) == (
            409,
            {"error": "handshake_id already exists with different conversation_id"},
        )


async def test_camel_case_aliases():
    await make_device()
    camel = {
        "handshakeId": "hs_1234",
        "deviceId": DEVICE,
        "clientEphemeralPublicKey": KEY,
        "clientSessionNonce": "bm9uY2U=",
    }
    async with http_client(application) as http:
        response = await http.post(
            "/gateway/v1/sessions/sess_1234/handshake/client-init", json=camel, headers=bearer(OWNER)
        )
    assert response.status_code == 202


async def test_grantee_may_open_a_session_owned_by_the_device_owner(client):
    await sync_to_async(shared_device)(client, DEVICE)
    async with http_client(application) as http:
        assert (await init(http, token=BOB)).status_code == 202
        hs = await http.get("/gateway/v1/sessions/sess_1234/handshake/hs_1234", headers=bearer(BOB))
        assert hs.status_code == 200
        health = (await http.get("/gateway/v1/health", headers=bearer(OWNER))).json()
        assert health["sessions"] == 1  # the device owner owns the session
        assert (await http.get("/gateway/v1/health", headers=bearer(BOB))).json()["sessions"] == 0


async def test_demo_email_fallback_may_init():
    await sync_to_async(register)(DEVICE, "old-owner", email="owner@example.com")
    async with http_client(application) as http:
        assert (await init(http, token=token_for("new-uid", email="owner@example.com"))).status_code == 202


async def test_handshake_poll_errors():
    await make_device()
    async with http_client(application) as http:
        await init(http)
        get = lambda path, token=OWNER: http.get(path, headers=bearer(token))  # noqa: E731
        assert (await get("/gateway/v1/sessions/xx/handshake/hs_1234")).json() == {"error": "invalid session_id"}
        assert (await get("/gateway/v1/sessions/sess_1234/handshake/h")).json() == {"error": "invalid handshake_id"}
        response = await get("/gateway/v1/sessions/sess_none/handshake/hs_1234")
        assert (response.status_code, response.json()) == (404, {"error": "session not found"})
        response = await get("/gateway/v1/sessions/sess_1234/handshake/hs_1234", EVE)
        assert (response.status_code, response.json()) == (403, {"error": "forbidden"})
        response = await get("/gateway/v1/sessions/sess_1234/handshake/hs_other")
        assert (response.status_code, response.json()) == (404, {"error": "handshake not found"})
        view = (await get("/gateway/v1/sessions/sess_1234/handshake/hs_1234")).json()
        assert view["agent_ephemeral_public_key"] == view["agent_identity_signature"] == view["transcript_hash"] == ""
        assert "client_session_nonce" not in view and view["created_at"].endswith("Z")


async def test_acknowledged_session_is_not_sent_again():
    keys = await make_device()
    agent = await open_agent()
    client = ClientSide.new("sess_ack1", "hs_ack1", DEVICE)
    async with http_client(application) as http:
        await http.post(
            "/gateway/v1/sessions/sess_ack1/handshake/client-init", json=client.init_body(), headers=bearer(OWNER)
        )
        ack = keys.ack(await agent.recv())
        await http.post("/gateway/v1/sessions/sess_ack1/handshake/agent-ack", json=ack, headers=bearer(OWNER))
        again = await http.post(
            "/gateway/v1/sessions/sess_ack1/handshake/client-init", json=client.init_body(), headers=bearer(OWNER)
        )
    assert (again.json()["status"], again.json()["relay_status"]) == ("agent_acknowledged", "already_acknowledged")
    assert await agent.nothing()
    await agent.close()


async def test_a_collaborator_cannot_use_a_session_someone_else_created(client):
    """decisions.md H5: members are the session's creator and the device owner; other collaborators get 403."""
    from tests.relay_helpers import Stream

    await sync_to_async(shared_device)(client, DEVICE)
    async with http_client(application) as http:
        assert (await init(http, "sess_owner01")).status_code == 202  # the owner's session
        forbidden = {"error": "forbidden"}
        hs = await http.get("/gateway/v1/sessions/sess_owner01/handshake/hs_1234", headers=bearer(BOB))
        assert (hs.status_code, hs.json()) == (403, forbidden)
        message = {"encrypted": True, "seq": 2**63 - 1, "nonce": "AAAA", "tag": "AAAA", "ciphertext": "AAAA"}
        posted = await http.post("/gateway/v1/sessions/sess_owner01/messages", json=message, headers=bearer(BOB))
        assert (posted.status_code, posted.json()) == (403, forbidden)
        session = await relay_sessions.sessions.get("sess_owner01")
        assert session is not None
        assert session["seq_client_to_agent"] == 0  # nothing advanced
        repeat = await init(http, "sess_owner01", token=BOB)
        assert (repeat.status_code, repeat.json()) == (403, forbidden)
        stream = Stream(application, "/gateway/v1/sessions/sess_owner01/events", BOB)
        assert await stream.open() == 403
        # Bob's own session on the same device is his, and the owner may read it too.
        assert (await init(http, "sess_bob0001", token=BOB, handshake_id="hs_bob1")).status_code == 202
        for token in (BOB, OWNER):
            got = await http.get("/gateway/v1/sessions/sess_bob0001/handshake/hs_bob1", headers=bearer(token))
            assert got.status_code == 200
