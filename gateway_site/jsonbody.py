"""Reading JSON request bodies the way the contract does: only `application/json`, only an object."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from gateway_site import safejson
from gateway_site.errors import BadRequest


def json_object(request: HttpRequest, error: str) -> dict[str, Any]:
    """The body as a JSON object (`null` counts as `{}`); anything else raises BadRequest(`error`).

    A wrong content type, malformed JSON, non-UTF-8 bytes, an array or a scalar are all the same error.
    """
    content_type = request.META.get("CONTENT_TYPE", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        raise BadRequest(error)
    try:
        data = safejson.loads(request.body)
    except safejson.InvalidJson:
        raise BadRequest(error) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise BadRequest(error)
    return data


def field(data: dict[str, Any], name: str) -> Any:
    """A field by exact name, else by case-insensitive name (the upstream's JSON decoding ignores case)."""
    if name in data:
        return data[name]
    lowered = name.lower()
    for key, value in data.items():
        if key.lower() == lowered:
            return value
    return None
