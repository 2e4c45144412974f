"""Reading JSON request bodies the way the contract does: only `application/json`, only an object.

`parse_object` is the one implementation; `json_object` (Django) and `asgi_http.json_object` (ASGI) adapt to it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from gateway_site import safejson
from gateway_site.errors import ApiError, BadRequest

JSON_ONLY = frozenset({"application/json"})


def parse_object(
    body: bytes,
    content_type: str | None,
    error: ApiError,
    *,
    media_types: frozenset[str] | None = JSON_ONLY,
    null_is_empty: bool = True,
) -> dict[str, Any]:
    """`body` as a JSON object, or raise `error`: the one reader behind every entry point.

    `content_type` is the request's header ('' or None when absent); its media type must be one of `media_types`
    (None: any). A wrong type, an empty body, malformed JSON, non-UTF-8 bytes, an array or a scalar are all the same
    error; `null` is `{}` when `null_is_empty`, else the error too.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_types is not None and media_type not in media_types:
        raise error
    try:
        data = safejson.loads(body)
    except safejson.InvalidJson:
        raise error from None
    if data is None and null_is_empty:
        return {}
    if not isinstance(data, dict):
        raise error
    return data


def json_object(request: HttpRequest, error: str) -> dict[str, Any]:
    """A Django request's body as a JSON object (`null` counts as `{}`); anything else raises BadRequest(`error`)."""
    return parse_object(request.body, request.META.get("CONTENT_TYPE", ""), BadRequest(error))


def field(data: dict[str, Any], name: str) -> Any:
    """A field by exact name, else by case-insensitive name (the upstream's JSON decoding ignores case)."""
    if name in data:
        return data[name]
    lowered = name.lower()
    for key, value in data.items():
        if key.lower() == lowered:
            return value
    return None
