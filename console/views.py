"""The console page and its static modules, served by the gateway itself (no build step, no other host)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from gateway_site.errors import not_found
from gateway_site.views import api_view

ASSETS = Path(__file__).resolve().parent / "static" / "console"
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# Everything the page needs comes from this origin; nothing inline, nothing from elsewhere.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


@api_view("GET")
def console(request: HttpRequest) -> HttpResponse:
    response = render(request, "console/index.html", {"client_name": settings.GATEWAY.oauth_client_name})
    response["Cache-Control"] = "no-cache"
    response["Content-Security-Policy"] = CSP
    response["Referrer-Policy"] = "no-referrer"
    return response


@api_view("GET")
def asset(request: HttpRequest, name: str) -> HttpResponse:
    """One of the console's own files; the name must be a plain file name in the assets folder."""
    path = ASSETS / name
    if "/" in name or name.startswith(".") or path.suffix not in CONTENT_TYPES or not path.is_file():
        raise not_found()
    response = HttpResponse(path.read_bytes(), content_type=CONTENT_TYPES[path.suffix])
    response["Cache-Control"] = "no-cache"
    return response
