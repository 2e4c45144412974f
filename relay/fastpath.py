"""`POST /gateway/v1/sessions/{id}/messages` served on ASGI, ahead of Django (the relay's hot path).

Same contract as the rest of the API (docs/protocol/relay.md §4.4): bearer auth, the JSON errors, CORS. The session
lives in the ephemeral store; only a collaborator's first check in a minute reads the database, in a worker thread.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from gateway_site import asgi_http
from gateway_site.auth import principal_from_scope
from gateway_site.errors import ApiError, BadRequest, server_error
from relay import delivery, sessions

logger = logging.getLogger("gateway.relay")
PATH = re.compile(r"^/gateway/v1/sessions/([^/]+)/messages$")


async def messages(scope: dict[str, Any], receive: Any, send: Any, session_id: str) -> None:
    body = await asgi_http.read_body(receive)
    try:
        principal = principal_from_scope(scope)
        session_id = sessions.session_id_param(session_id)
        header_key = sessions.idempotency_header(asgi_http.header(scope, b"x-idempotency-key"))
        data = asgi_http.json_object(scope, body, BadRequest("invalid request body"))
        session = sessions.load(session_id)
        await sessions.ensure_member(session, principal)
        outgoing = sessions.message_prepare(principal=principal, session=session, header_key=header_key, body=data)
        if not await delivery.send_to_device(outgoing.session["device_id"], outgoing.frame):
            sessions.message_undo(outgoing)
            raise sessions.agent_unavailable(outgoing.session)
    except ApiError as exc:
        await asgi_http.respond_error(send, scope, exc)
        return
    except Exception:
        logger.exception("message relay failed")
        await asgi_http.respond_error(send, scope, server_error())
        return
    await asgi_http.respond_json(send, scope, 202, outgoing.response)
