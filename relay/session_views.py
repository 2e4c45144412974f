"""Session endpoints (docs/protocol/relay.md §4.1-4.3): parse, call one service, render. Async, so that writing to
the agent socket is awaited on the event loop; the services run their database reads in threads.

`POST …/messages` is served ahead of Django by relay.fastpath; its route here only completes the route table.
"""

from __future__ import annotations

from django.http import HttpResponse

from gateway_site.auth import check_scopes
from gateway_site.errors import json_response, method_not_allowed
from gateway_site.jsonbody import json_object
from gateway_site.requests import ApiRequest
from gateway_site.views import api_view
from relay import handshake, session_render
from relay.session_requests import agent_ack_parse, client_init_parse, handshake_id_param, session_id_param


@api_view("POST")
async def client_init(request: ApiRequest, session_id: str) -> HttpResponse:
    session_id = session_id_param(session_id)
    init = client_init_parse(json_object(request, "invalid request body"))
    outcome = await handshake.session_client_init(principal=request.principal, session_id=session_id, init=init)
    body = session_render.client_init_response(outcome.session, outcome.relay_status, outcome.relay_error)
    return json_response(body, status=202)


@api_view("GET")
async def handshake_read(request: ApiRequest, session_id: str, handshake_id: str) -> HttpResponse:
    session_id = session_id_param(session_id)
    handshake_id = handshake_id_param(handshake_id)
    session = await handshake.session_handshake_read(
        principal=request.principal, session_id=session_id, handshake_id=handshake_id
    )
    return json_response(session_render.handshake_view(session))


@api_view("POST")
async def agent_ack(request: ApiRequest, session_id: str) -> HttpResponse:
    check_scopes(request.principal, "device")  # docs/protocol/decisions.md O2
    session_id = session_id_param(session_id)
    ack = agent_ack_parse(json_object(request, "invalid request body"))
    session = await handshake.session_ack_post(principal=request.principal, session_id=session_id, ack=ack)
    return json_response(session_render.ack_response(session), status=202)


class ServedByFastPath(RuntimeError):
    """Raised if a `POST …/messages` ever reaches Django (relay.fastpath serves every one)."""


@api_view("POST")
async def messages(request: ApiRequest, session_id: str) -> HttpResponse:
    """Never reached by a POST: gateway_site.routing hands those to relay.fastpath before Django. The route exists
    so that other methods get the contract's 405 and the route table matches the OpenAPI document; a test sends a
    POST through the whole application and proves this view does not run."""
    raise ServedByFastPath(request.path)


@api_view("GET")
async def session_events_non_get(request: ApiRequest, session_id: str) -> HttpResponse:
    """GET of the events stream is served by relay.event_streams.SessionEventsConsumer; other methods land here."""
    raise method_not_allowed(["GET"])  # only HEAD gets here: a stream has nothing to show without its body
