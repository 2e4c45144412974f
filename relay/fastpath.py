"""`POST /gateway/v1/sessions/{id}/messages` served on ASGI, ahead of Django (the relay's hot path).

Same contract as the rest of the API (docs/protocol/relay.md §4.4): bearer auth, the JSON errors, CORS. Parse, call
relay.messaging, render.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from gateway_site import asgi_http, metrics, outage
from gateway_site.auth import principal_from_scope
from gateway_site.errors import ApiError, BadRequest, server_error
from relay.messaging import session_message_post
from relay.session_requests import idempotency_header, session_id_param

logger = logging.getLogger("gateway.relay")
PATH = re.compile(r"^/gateway/v1/sessions/([^/]+)/messages$")


async def messages(scope: dict[str, Any], receive: Any, send: Any, session_id: str) -> None:
    started = time.perf_counter()  # the relay latency runs from here to the write on the agent socket
    body = await asgi_http.read_body(receive)
    try:
        principal = principal_from_scope(scope)
        session_id = session_id_param(session_id)
        key = idempotency_header(asgi_http.header(scope, b"x-idempotency-key"))
        data = asgi_http.json_object(scope, body, BadRequest("invalid request body"))
        response = await session_message_post(
            principal=principal, session_id=session_id, idempotency_key=key, body=data
        )
    except ApiError as exc:
        await asgi_http.respond_error(send, scope, exc)
        return
    except Exception as exc:
        unavailable = outage.unavailable(exc)  # Redis down: 503 state_unavailable, logged once per outage
        if unavailable is None:
            logger.exception("message relay failed")
        await asgi_http.respond_error(send, scope, unavailable or server_error())
        return
    metrics.client_frame_relayed(len(body), started)
    await asgi_http.respond_json(send, scope, 202, response)
