"""Session endpoints (docs/protocol/relay.md §4.1-4.4): parse, call relay.sessions, deliver, render. Async, so that
writing to the agent socket is awaited on the event loop; database reads (device, identity key, grants) run in
threads."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from gateway_site.auth import Principal, check_scopes
from gateway_site.errors import NotFound, json_response, method_not_allowed
from gateway_site.jsonbody import json_object
from gateway_site.views import api_view
from relay import delivery, sessions
from relay.registry import agents


def _principal(request: HttpRequest) -> Principal:
    return request.principal  # type: ignore[attr-defined,no-any-return]


async def member_session(session_id: str, principal: Principal) -> sessions.Session:
    """404 `session not found`, 403 `forbidden`; only a collaborator's first check in a minute reads the database."""
    session = sessions.load(session_id)
    await sessions.ensure_member(session, principal)
    return session


def _sweep() -> None:
    for swept in sessions.sweep_if_due():
        delivery.end_session_streams(swept["session_id"], "expired")


async def _send_request(session: sessions.Session) -> tuple[sessions.Session, str]:
    """Write the handshake request to the device's socket; returns the updated session and the failure reason."""
    socket = agents.get(session["device_id"])
    if socket is None:
        updated = sessions.record_request_failed(session["session_id"], "agent_not_connected")
        return updated or session, "agent_not_connected"
    if not sessions.claim_request_send(session["session_id"], socket.connection_id):
        return sessions.load(session["session_id"]), ""  # this socket already has the request
    if not await socket.send_frame(sessions.handshake_request_frame(session)):
        updated = sessions.record_request_failed(session["session_id"], "agent_unavailable")
        return updated or session, "agent_unavailable"
    updated = sessions.record_request_sent(session["session_id"], socket.connection_id)
    if updated is None:
        return session, "session_not_found"
    return updated, ""


@api_view("POST")
async def client_init(request: HttpRequest, session_id: str) -> HttpResponse:
    session_id = sessions.session_id_param(session_id)
    init = sessions.client_init_parse(json_object(request, "invalid request body"))
    session = await sync_to_async(sessions.client_init_session)(
        principal=_principal(request), session_id=session_id, init=init
    )
    _sweep()
    if session["status"] == sessions.ACKNOWLEDGED:
        return json_response(sessions.client_init_response(session, "already_acknowledged"), status=202)
    session, failure = await _send_request(session)
    if failure:
        return json_response(sessions.client_init_response(session, "pending_agent_connection", failure), status=202)
    return json_response(sessions.client_init_response(session, "forwarded_to_agent"), status=202)


@api_view("GET")
async def handshake(request: HttpRequest, session_id: str, handshake_id: str) -> HttpResponse:
    session_id = sessions.session_id_param(session_id)
    handshake_id = sessions.handshake_id_param(handshake_id)
    session = await member_session(session_id, _principal(request))
    if handshake_id != session["handshake_id"]:
        raise NotFound("handshake not found")
    socket = agents.get(session["device_id"])
    if sessions.resend_due(session, socket.connection_id if socket else None):
        session, _ = await _send_request(session)
    return json_response(sessions.handshake_view(session))


@api_view("POST")
async def agent_ack(request: HttpRequest, session_id: str) -> HttpResponse:
    check_scopes(_principal(request), "device")  # docs/protocol/decisions.md O2
    session_id = sessions.session_id_param(session_id)
    ack = sessions.agent_ack_parse(json_object(request, "invalid request body"))
    session = await sync_to_async(sessions.agent_ack_http)(
        principal=_principal(request), session_id=session_id, ack=ack
    )
    data = sessions.dumps(sessions.ack_event(session))
    event_id = sessions.store_event((session_id, "session.event", data))
    delivery.publish_session_event(session_id, event_id, "session.event", data)
    body = {"status": session["status"], **sessions.ids_echo(session)}
    return json_response(body, status=202)


@api_view("POST")
async def messages(request: HttpRequest, session_id: str) -> HttpResponse:
    session_id = sessions.session_id_param(session_id)
    header_key = sessions.idempotency_header(request.headers.get("X-Idempotency-Key"))
    body = json_object(request, "invalid request body")
    principal = _principal(request)
    session = await member_session(session_id, principal)
    outgoing = sessions.message_prepare(principal=principal, session=session, header_key=header_key, body=body)
    if not await delivery.send_to_device(outgoing.session["device_id"], outgoing.frame):
        sessions.message_undo(outgoing)
        raise sessions.agent_unavailable(outgoing.session)
    return json_response(outgoing.response, status=202)


@api_view("GET")
async def session_events_non_get(request: HttpRequest, session_id: str) -> HttpResponse:
    """GET of the events stream is served by relay.consumers.SessionEventsConsumer; other methods land here."""
    raise method_not_allowed(["GET"])  # only HEAD gets here: a stream has nothing to show without its body
