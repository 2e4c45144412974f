"""Agent acks over HTTP and WebSocket (docs/protocol/relay.md §4.3, §5.6, docs/protocol/decisions.md O2, R5)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from tests.e2ee import AgentSide, ClientSide, b64
from tests.relay.session_fixtures import DEVICE, OWNER, make_device, open_agent
from tests.relay_helpers import bearer, http_client, token_for
from tests.shares_helpers import shared_device

pytestmark = pytest.mark.django_db(transaction=True)


async def started(http, agent, sid="sess_a1", hid="hs_a1"):
    client = ClientSide.new(sid, hid, DEVICE)
    await http.post(f"/gateway/v1/sessions/{sid}/handshake/client-init", json=client.init_body(), headers=bearer(OWNER))
    return client, await agent.recv()


async def post_ack(http, ack, sid="sess_a1", token=OWNER):
    return await http.post(f"/gateway/v1/sessions/{sid}/handshake/agent-ack", json=ack, headers=bearer(token))


async def status_of(http, sid="sess_a1", hid="hs_a1"):
    return (await http.get(f"/gateway/v1/sessions/{sid}/handshake/{hid}", headers=bearer(OWNER))).json()


async def test_http_ack_checks_in_order():
    keys = await make_device()
    agent = await open_agent()
    async with http_client(application) as http:
        _, request = await started(http, agent)
        good = keys.ack(request)
        cases = [
            ("xx", good, 400, {"error": "invalid session_id"}),
            ("sess_a1", {**good, "device_id": ""}, 400, {"error": "device_id is required"}),
            ("sess_a1", {**good, "handshake_id": "h"}, 400, {"error": "invalid handshake_id"}),
            ("sess_a1", {**good, "agent_ephemeral_public_key": "AAAA"}, 400, {"error": "invalid ephemeral public key"}),
            ("sess_none", good, 404, {"error": "handshake not found"}),
            ("sess_a1", {**good, "handshake_id": "hs_other"}, 404, {"error": "handshake not found"}),
            ("sess_a1", {**good, "device_id": "dev_other1"}, 400, {"error": "device_id mismatch for handshake"}),
            ("sess_a1", {**good, "transcript_hash": b64(b"x" * 32)}, 400, {"error": "transcript hash mismatch"}),
            ("sess_a1", {**good, "transcript_hash": "not base64"}, 400, {"error": "transcript hash mismatch"}),
            (
                "sess_a1",
                {**good, "agent_identity_signature": b64(b"s" * 64)},
                401,
                {"error": "signature verification failed"},
            ),
            (
                "sess_a1",
                {**good, "agent_identity_signature": b64(b"s" * 10)},
                401,
                {"error": "signature verification failed"},
            ),
        ]
        for sid, body, status, expected in cases:
            response = await post_ack(http, body, sid)
            assert (response.status_code, response.json()) == (status, expected), body
        assert (await status_of(http))["status"] == "pending_agent_ack"  # failed HTTP acks change nothing
        assert (await post_ack(http, good)).status_code == 202
        assert (await status_of(http))["status"] == "agent_acknowledged"
    await agent.close()


async def test_signature_must_come_from_the_registered_identity():
    await make_device()
    impostor = AgentSide.new()
    agent = await open_agent()
    async with http_client(application) as http:
        _, request = await started(http, agent)
        response = await post_ack(http, impostor.ack(request))
    assert (response.status_code, response.json()) == (401, {"error": "signature verification failed"})
    await agent.close()


async def test_ack_needs_the_device_scope_and_the_owner(client):
    keys = await make_device()
    agent = await open_agent()
    async with http_client(application) as http:
        _, request = await started(http, agent)
        ack = keys.ack(request)
        response = await post_ack(http, ack, token=token_for("owner-1", scope="profile"))
        assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"
        await sync_to_async(shared_device)(client, "dev_grant0001")
        grantee = token_for("bob-2", email="bob@example.com", scope="device")
        response = await post_ack(http, ack, token=grantee)
        assert (response.status_code, response.json()) == (404, {"error": "device identity not found"})
    await agent.close()


async def test_first_valid_ack_wins():
    keys = await make_device()
    agent = await open_agent()
    async with http_client(application) as http:
        _, request = await started(http, agent)
        first = keys.ack(request)
        assert (await post_ack(http, first)).status_code == 202
        assert (await post_ack(http, first)).status_code == 202  # the same ack again is fine
        second = keys.ack(request)  # a new ephemeral key for the same handshake
        response = await post_ack(http, second)
        assert (response.status_code, response.json()) == (409, {"error": "handshake already acknowledged"})
        assert (await status_of(http))["agent_ephemeral_public_key"] == first["agent_ephemeral_public_key"]
        await agent.send({"type": "session.handshake.ack", "status": "ok", "session_id": "sess_a1", **second})
        reply = await agent.recv()
        assert reply["type"] == "agent.error" and reply["error"] == "handshake already acknowledged"
        assert (await status_of(http))["agent_ephemeral_public_key"] == first["agent_ephemeral_public_key"]
    await agent.close()


async def test_websocket_ack_acknowledges():
    keys = await make_device()
    agent = await open_agent()
    async with http_client(application) as http:
        _, request = await started(http, agent)
        await agent.send(
            {"type": "session.handshake.ack", "status": "ok", "session_id": "sess_a1", **keys.ack(request)}
        )
        assert await agent.nothing()
        assert (await status_of(http))["status"] == "agent_acknowledged"
    await agent.close()


@pytest.mark.parametrize(
    ("mutate", "last_error"),
    [
        (lambda a: {**a, "status": "error", "error": "missing_handshake_fields"}, "missing_handshake_fields"),
        (lambda a: {**a, "status": "error"}, "agent handshake error"),
        (
            lambda a: {k: v for k, v in a.items() if k != "transcript_hash"},
            "missing handshake ack fields from agent websocket frame",
        ),
        (lambda a: {**a, "transcript_hash": b64(b"z" * 32)}, "transcript hash mismatch"),
        (
            lambda a: {**a, "agent_ephemeral_public_key": b64(b"k" * 31)},
            "invalid x25519 public key length: got 31 want 32",
        ),
        (
            lambda a: {**a, "agent_ephemeral_public_key": "***"},
            "invalid x25519 public key encoding: not standard padded base64",
        ),
        (
            lambda a: {**a, "agent_identity_signature": b64(b"s" * 63)},
            "signature verification failed: invalid signature length: got 63 want 64",
        ),
        (
            lambda a: {**a, "agent_identity_signature": b64(b"s" * 64)},
            "signature verification failed: invalid agent identity signature",
        ),
    ],
)
async def test_failing_websocket_ack_marks_agent_error(mutate, last_error):
    keys = await make_device()
    agent = await open_agent()
    async with http_client(application) as http:
        _, request = await started(http, agent)
        frame = {"type": "session.handshake.ack", "status": "ok", "session_id": "sess_a1", **mutate(keys.ack(request))}
        await agent.send(frame)
        await agent.send({"type": "ping"})
        await agent.recv()  # processed in order
        view = await status_of(http)
        assert (view["status"], view["last_error"]) == ("agent_error", last_error)
    await agent.close()


async def test_ack_for_another_device_or_handshake_is_dropped():
    keys = await make_device()
    agent = await open_agent()
    async with http_client(application) as http:
        _, request = await started(http, agent)
        ack = keys.ack(request)
        await agent.send(
            {
                "type": "session.handshake.ack",
                "status": "ok",
                "session_id": "sess_a1",
                **ack,
                "handshake_id": "hs_wrong",
            }
        )
        await agent.send({"type": "session.handshake.ack", "status": "ok", "session_id": "sess_unknown", **ack})
        assert await agent.nothing()
        assert (await status_of(http))["status"] == "pending_agent_ack"
    await agent.close()


async def test_a_failing_copy_of_the_accepted_ack_changes_nothing():
    keys = await make_device()
    agent = await open_agent()
    async with http_client(application) as http:
        _, request = await started(http, agent)
        ack = keys.ack(request)
        assert (await post_ack(http, ack)).status_code == 202
        for bad in ({**ack, "transcript_hash": b64(b"z" * 32)}, {**ack, "status": "error"}):
            await agent.send({"type": "session.handshake.ack", "status": "ok", "session_id": "sess_a1", **bad})
            reply = await agent.recv()
            assert reply["type"] == "agent.error"
        assert (await status_of(http))["status"] == "agent_acknowledged"
    await agent.close()


async def test_client_init_after_agent_error_sends_again():
    keys = await make_device()
    agent = await open_agent()
    async with http_client(application) as http:
        client, request = await started(http, agent)
        await agent.send(
            {"type": "session.handshake.ack", "session_id": "sess_a1", **keys.ack(request), "status": "error"}
        )
        await agent.send({"type": "ping"})
        await agent.recv()
        assert (await status_of(http))["status"] == "agent_error"
        again = await http.post(
            "/gateway/v1/sessions/sess_a1/handshake/client-init", json=client.init_body(), headers=bearer(OWNER)
        )
        assert (again.json()["status"], again.json()["relay_status"]) == ("pending_agent_ack", "forwarded_to_agent")
        assert (await agent.recv())["type"] == "session.handshake.request"
    await agent.close()


async def test_demo_email_owner_may_read_the_session_it_opened():
    from asgiref.sync import sync_to_async as s2a

    from tests.relay_helpers import register

    await s2a(register)("dev_mail0001", "old-owner", email="owner@example.com")
    same_email = token_for("new-uid", email="owner@example.com")
    client = ClientSide.new("sess_mail1", "hs_mail1", "dev_mail0001")
    async with http_client(application) as http:
        init = await http.post(
            "/gateway/v1/sessions/sess_mail1/handshake/client-init", json=client.init_body(), headers=bearer(same_email)
        )
        assert init.status_code == 202
        poll = await http.get("/gateway/v1/sessions/sess_mail1/handshake/hs_mail1", headers=bearer(same_email))
        assert poll.status_code == 200
