"""`POST …/messages` (docs/protocol/relay.md §4.4, docs/protocol/decisions.md R1): envelope types, seq, idempotency,
delivery and rollback."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from relay.session_store import sessions as store
from tests.e2ee import ClientSide
from tests.relay.session_fixtures import DEVICE, OWNER, handshake, make_device, open_agent
from tests.relay_helpers import bearer, http_client
from tests.shares_helpers import BOB, EVE

pytestmark = pytest.mark.django_db(transaction=True)
ENVELOPE = {"encrypted": True, "ciphertext": "cipher", "nonce": "nonce", "tag": "tag", "seq": 1}


async def post(http, sid, body, token=OWNER, key=None, **headers):
    hdrs = {**bearer(token), **headers}
    if key is not None:
        hdrs["X-Idempotency-Key"] = key
    return await http.post(f"/gateway/v1/sessions/{sid}/messages", json=body, headers=hdrs)


@pytest.fixture
async def live():
    keys = await make_device()
    agent = await open_agent()
    async with http_client(application) as http:
        client = await handshake(http, agent, keys)
        yield http, agent, keys, client
    await agent.close()


async def test_encrypted_message_reaches_the_agent_with_requester_fields(live):
    http, agent, keys, client = live
    frame = client.message("hello agent", "msg_1")
    response = await post(http, client.session_id, frame, key="idem_1")
    assert response.status_code == 202
    assert response.json() == {
        "status": "forwarded_to_agent",
        "session_id": client.session_id,
        "sessionId": client.session_id,
        "handshake_id": client.handshake_id,
        "handshakeId": client.handshake_id,
        "conversation_id": f"conv_{client.session_id}",
        "conversationId": f"conv_{client.session_id}",
        "message_id": "msg_1",
        "messageId": "msg_1",
    }
    delivered = await agent.recv()
    assert delivered["type"] == "session.message" and delivered["requester_uid"] == "owner-1"
    assert delivered["requester"] == {"uid": "owner-1", "email": "owner@example.com", "display_name": "owner-1"}
    assert delivered["received_at"].endswith("Z")
    assert keys.read(delivered)["prompt"] == "hello agent"


async def test_message_id_is_generated_when_absent(live):
    http, agent, _, client = live
    response = await post(http, client.session_id, {**ENVELOPE})
    assert response.json()["message_id"].startswith("msg_") and len(response.json()["message_id"]) == 36
    assert (await agent.recv())["message_id"] == response.json()["message_id"]


@pytest.mark.parametrize(
    ("change", "violation"),
    [
        ({"encrypted": "true"}, "missing_encrypted_flag"),
        ({"encrypted": 1}, "missing_encrypted_flag"),
        ({"encrypted": None}, "missing_encrypted_flag"),
        ({"ciphertext": " "}, "missing_ciphertext"),
        ({"ciphertext": 5}, "missing_ciphertext"),
        ({"nonce": ""}, "missing_nonce"),
        ({"tag": None}, "missing_tag"),
        ({"seq": "1"}, "invalid_seq"),
        ({"seq": True}, "invalid_seq"),
        ({"seq": 0}, "invalid_seq"),
        ({"seq": 1.5}, "invalid_seq"),
        ({"seq": -3}, "invalid_seq"),
    ],
)
async def test_envelope_rule_with_exact_json_types(live, change, violation):
    http, agent, _, client = live
    body = {k: v for k, v in {**ENVELOPE, **change}.items() if v is not None}
    response = await post(http, client.session_id, body)
    assert response.status_code == 400
    assert response.json() == {
        "error": "encryption_required",
        "violation": violation,
        "session_id": client.session_id,
        "conversation_id": f"conv_{client.session_id}",
    }
    assert await agent.nothing()


async def test_missing_seq(live):
    http, _, _, client = live
    body = {k: v for k, v in ENVELOPE.items() if k != "seq"}
    assert (await post(http, client.session_id, body)).json()["violation"] == "missing_seq"


async def test_integral_float_seq_is_accepted(live):
    http, agent, _, client = live
    assert (await post(http, client.session_id, {**ENVELOPE, "seq": 1.0})).status_code == 202
    await agent.recv()
    assert (await post(http, client.session_id, {**ENVELOPE, "seq": 1})).json()["error"] == "replay_detected"


async def test_replayed_and_older_seq_is_refused_and_gaps_are_allowed(live):
    http, agent, _, client = live
    assert (await post(http, client.session_id, {**ENVELOPE, "seq": 1})).status_code == 202
    for seq in (1, 0.5, 1):
        response = await post(http, client.session_id, {**ENVELOPE, "seq": seq})
        assert response.status_code in (400, 409)
    response = await post(http, client.session_id, {**ENVELOPE, "seq": 1}, key="other-key")
    assert (response.status_code, response.json()) == (
        409,
        {
            "error": "replay_detected",
            "violation": "replay_detected",
            "session_id": client.session_id,
            "conversation_id": f"conv_{client.session_id}",
        },
    )
    assert (await post(http, client.session_id, {**ENVELOPE, "seq": 7})).status_code == 202


async def test_duplicate_idempotency_key_is_409(live):
    http, agent, _, client = live
    assert (await post(http, client.session_id, {**ENVELOPE, "seq": 1}, key="idem_x")).status_code == 202
    response = await post(http, client.session_id, {**ENVELOPE, "seq": 2}, key="idem_x")
    assert (response.status_code, response.json()) == (
        409,
        {"error": "duplicate_request", "session_id": client.session_id},
    )
    assert (await post(http, client.session_id, {**ENVELOPE, "seq": 2}, key="idem_y")).status_code == 202


async def test_message_id_is_the_key_without_the_header(live):
    # docs/protocol/decisions.md R1: the desktop sends no header; its message_id de-duplicates.
    http, agent, _, client = live
    assert (await post(http, client.session_id, {**ENVELOPE, "seq": 1, "message_id": "m-1"})).status_code == 202
    response = await post(http, client.session_id, {**ENVELOPE, "seq": 2, "message_id": "m-1"})
    assert response.json() == {"error": "duplicate_request", "session_id": client.session_id}
    assert (await post(http, client.session_id, {**ENVELOPE, "seq": 3})).status_code == 202  # no key at all


async def test_blank_header_is_refused(live):
    http, _, _, client = live
    response = await post(http, client.session_id, ENVELOPE, key="   ")
    assert (response.status_code, response.json()) == (400, {"error": "missing X-Idempotency-Key header"})


async def test_agent_unavailable_rolls_back_seq_and_key(live):
    http, agent, _, client = live
    await agent.close()
    response = await post(http, client.session_id, {**ENVELOPE, "seq": 1}, key="idem_1")
    assert (response.status_code, response.json()) == (
        503,
        {"error": "agent_unavailable", "session_id": client.session_id, "conversation_id": f"conv_{client.session_id}"},
    )
    session = await store.get(client.session_id)
    assert session is not None
    assert session["seq_client_to_agent"] == 0
    again = await open_agent()
    assert (await post(http, client.session_id, {**ENVELOPE, "seq": 1}, key="idem_1")).status_code == 202
    assert (await again.recv())["seq"] == 1
    await again.close()


async def test_session_errors():
    await make_device()
    async with http_client(application) as http:
        assert (await post(http, "xx", ENVELOPE)).json() == {"error": "invalid session_id"}
        response = await post(http, "sess_none", ENVELOPE)
        assert (response.status_code, response.json()) == (404, {"error": "session not found"})
        client = ClientSide.new("sess_m1", "hs_m1", DEVICE)
        await http.post(
            "/gateway/v1/sessions/sess_m1/handshake/client-init", json=client.init_body(), headers=bearer(OWNER)
        )
        response = await post(http, "sess_m1", ENVELOPE, token=EVE)
        assert (response.status_code, response.json()) == (403, {"error": "forbidden"})
        response = await post(http, "sess_m1", ENVELOPE)
        assert (response.status_code, response.json()) == (
            409,
            {
                "error": "handshake_not_ready",
                "status": "pending_agent_connection",
                "session_id": "sess_m1",
                "handshake_id": "hs_m1",
                "conversation_id": "conv_sess_m1",
            },
        )
        response = await http.post(
            "/gateway/v1/sessions/sess_m1/messages",
            content="[]",
            headers={**bearer(OWNER), "Content-Type": "application/json"},
        )
        assert (response.status_code, response.json()) == (400, {"error": "invalid request body"})


async def test_conversation_mismatch(live):
    http, _, _, client = live
    response = await post(http, client.session_id, {**ENVELOPE, "conversation_id": "conv_other"})
    assert (response.status_code, response.json()) == (
        409,
        {
            "error": "conversation_mismatch",
            "session_id": client.session_id,
            "handshake_id": client.handshake_id,
            "conversation_id": f"conv_{client.session_id}",
        },
    )


async def test_unencrypted_frames_pass_when_not_required(live, configure):
    http, agent, _, client = live
    await sync_to_async(configure)(require_encrypted_frames=False)
    assert (await post(http, client.session_id, {"content": "plain", "seq": 1})).status_code == 202
    assert (await agent.recv())["content"] == "plain"
    session = await store.get(client.session_id)
    assert session is not None
    assert session["seq_client_to_agent"] == 0  # no seq tracking for invalid envelopes


def share_with_bob(client) -> str:
    from tests.shares_helpers import accept, invite, invite_token

    return accept(client, invite_token(invite(client, device_id=DEVICE))).json()["grantId"]


async def test_grantee_posts_and_loses_access_on_revoke(client):
    keys = await make_device()
    grant_id = await sync_to_async(share_with_bob)(client)
    agent = await open_agent()
    async with http_client(application) as http:
        session = await handshake(http, agent, keys, token=BOB)
        assert (await post(http, session.session_id, session.message("hi", "m1"), token=BOB)).status_code == 202
        await agent.recv()
        await http.post(f"/gateway/v1/shares/grants/{grant_id}/revoke", headers=bearer(OWNER))
        response = await post(http, session.session_id, session.message("again", "m2"), token=BOB)
        assert (response.status_code, response.json()) == (403, {"error": "forbidden"})
        assert (await post(http, session.session_id, {**ENVELOPE, "seq": 50})).status_code == 202  # the owner still can
    await agent.close()


async def test_messages_touch_no_database(live, monkeypatch):
    from django.db.backends.base.base import BaseDatabaseWrapper

    http, agent, _, client = live
    frame = client.message("no db", "m-db")

    def no_database(*args, **kwargs):
        raise AssertionError("the message path opened a database cursor")

    monkeypatch.setattr(BaseDatabaseWrapper, "cursor", no_database)
    assert (await post(http, client.session_id, frame)).status_code == 202
    await agent.recv()


async def test_a_post_to_messages_never_reaches_the_django_route():
    """relay.fastpath serves every POST; the Django route only completes the route table and answers other methods
    with 405. Were a POST to reach it, its view would raise (a 500), never answer `session not found`."""
    async with http_client(application) as http:
        response = await http.post("/gateway/v1/sessions/sess_nowhere1/messages", json={}, headers=bearer(OWNER))
        other = await http.get("/gateway/v1/sessions/sess_nowhere1/messages", headers=bearer(OWNER))
    assert response.status_code == 404 and response.json() == {"error": "session not found"}
    assert other.status_code == 405 and other.headers["allow"] == "POST"
