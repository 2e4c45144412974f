"""The JSON error contract: services and views raise these; `render` is how every edge answers with one (Django
responses through `ApiError.to_response`, ASGI edges through `Rendered.asgi_headers`).

Body shapes (docs/protocol/system-and-console.md §1.1): plain `{"error": "<message>", ...extra}`, OAuth
`{"error": "<code>", "error_description": "..."}` (an extra field), and the framework shape
`{"error": "<reason phrase>", "code": <status>}` for unknown paths, wrong methods, oversize bodies and crashes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from django.http import HttpResponse

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
PLAIN_CONTENT_TYPE = "text/plain; charset=utf-8"


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> HttpResponse:
    """A JSON response with the contract's content type (Django's JsonResponse omits the charset)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    response = HttpResponse(body, status=status, content_type=JSON_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


class ApiError(Exception):
    """An error with an HTTP status and a JSON body `{"error": message, **extra}`."""

    status = 400

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        fields: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})
        # `fields` carries body fields whose names clash with these arguments (e.g. a "status" field).
        self.extra = {**(fields or {}), **extra}

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.extra}

    def to_response(self) -> HttpResponse:
        rendered = render(self)
        response = HttpResponse(rendered.body, status=rendered.status, content_type=rendered.content_type)
        for name, value in rendered.headers:
            response[name] = value
        return response


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class Gone(ApiError):
    status = 410


class TooManyRequests(ApiError):
    status = 429


class StateUnavailable(ApiError):
    """`503 {"error":"state_unavailable"}`: the shared state (Redis, STATE_BACKEND=redis) cannot be reached right now;
    try again later (docs/protocol/system-and-console.md §1.1, docs/scaling.md "When Redis is down")."""

    status = 503

    def __init__(self) -> None:
        super().__init__("state_unavailable", headers={"Retry-After": "1"})


class FrameworkError(ApiError):
    """The framework shape: `{"error": "<reason phrase>", "code": <status>}`."""

    def __init__(self, status: int, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(HTTPStatus(status).phrase, status=status, headers=headers, code=status)


class PlainError(ApiError):
    """Answered as the status's reason phrase in text/plain, not JSON (webhook ingress, docs/protocol/tunnels.md §4)."""

    def __init__(self, status: int, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(HTTPStatus(status).phrase, status=status, headers=headers)


@dataclass(frozen=True)
class Rendered:
    """An error as it goes on the wire: status, content type, body and the error's own headers."""

    status: int
    content_type: str
    body: bytes
    headers: list[tuple[str, str]]

    def asgi_headers(self, *, content_length: bool = False) -> list[tuple[bytes, bytes]]:
        """Content type (and length), then the error's own headers, lower-cased, for an ASGI response start."""
        headers = [(b"content-type", self.content_type.encode("latin-1"))]
        if content_length:
            headers.append((b"content-length", str(len(self.body)).encode()))
        return headers + [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers]


def render(error: ApiError) -> Rendered:
    """The one rendering of an error: compact UTF-8 JSON of `error.body()`, or the reason phrase for a PlainError."""
    if isinstance(error, PlainError):
        return Rendered(error.status, PLAIN_CONTENT_TYPE, error.message.encode(), list(error.headers.items()))
    body = json.dumps(error.body(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Rendered(error.status, JSON_CONTENT_TYPE, body, list(error.headers.items()))


def not_found() -> FrameworkError:
    return FrameworkError(404)


def method_not_allowed(allowed: Iterable[str]) -> FrameworkError:
    return FrameworkError(405, headers={"Allow": ", ".join(allowed)})


def payload_too_large() -> FrameworkError:
    return FrameworkError(413)


def server_error() -> FrameworkError:
    # The upstream puts the panic text here; we never echo exception text to a client.
    return FrameworkError(500)
