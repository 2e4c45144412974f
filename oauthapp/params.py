"""How OAuth endpoints read parameters (docs/protocol/oauth.md §2 with docs/protocol/decisions.md O6).

A parameter's value is the first value of the key in a source, trimmed; the first source giving a non-empty value
wins. `/oauth/authorize` reads the query string, then the form body; the token and revoke endpoints read the form
body only (URL-encoded or multipart), never the query string. JSON bodies are never read.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.http import HttpRequest, QueryDict
from django.http.multipartparser import MultiPartParserError

EMPTY = QueryDict()


def form_body(request: HttpRequest) -> QueryDict:
    """The parsed form body; an unparsable one counts as empty (the request then fails on a missing parameter)."""
    if request.method != "POST":
        return EMPTY
    try:
        return request.POST
    except (MultiPartParserError, UnicodeDecodeError, ValueError):
        return EMPTY


class Params:
    def __init__(self, sources: Sequence[QueryDict]) -> None:
        self.sources = sources

    def get(self, name: str) -> str:
        for source in self.sources:
            values = source.getlist(name)
            if values:
                value = values[0].strip()
                if value:
                    return value
        return ""


def authorize_params(request: HttpRequest) -> Params:
    return Params([request.GET, form_body(request)])


def body_params(request: HttpRequest) -> Params:
    return Params([form_body(request)])
