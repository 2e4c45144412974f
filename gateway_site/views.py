"""View helpers shared by every app: method dispatch with the framework 405, and the JSON fallbacks."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from gateway_site.errors import FrameworkError, method_not_allowed, not_found

View = Callable[..., Any]


def api_view(*methods: str) -> Callable[[View], View]:
    """Accept only `methods` (HEAD follows GET), answer others with the framework 405 and an `Allow` header.

    API views authenticate with bearer tokens, never cookies, so CSRF protection does not apply to them.
    """
    allowed = [m.upper() for m in methods]
    if "GET" in allowed and "HEAD" not in allowed:
        allowed.append("HEAD")

    def decorate(view: View) -> View:
        if asyncio.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                if request.method not in allowed:
                    raise method_not_allowed(allowed)
                response: HttpResponse = await view(request, *args, **kwargs)
                if request.method == "HEAD":
                    response.content = b""
                return response

            return csrf_exempt(async_wrapper)

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in allowed:
                raise method_not_allowed(allowed)
            response: HttpResponse = view(request, *args, **kwargs)
            if request.method == "HEAD":
                response.content = b""
            return response

        return csrf_exempt(wrapper)

    return decorate


@csrf_exempt
def fallback_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Every unrouted path: the framework 404, never a redirect or an HTML page (docs/protocol/decisions.md K1)."""
    raise not_found()


def handler404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return not_found().to_response()


def handler500(request: HttpRequest) -> HttpResponse:
    return FrameworkError(500).to_response()


def handler400(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return FrameworkError(400).to_response()


def handler403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return FrameworkError(403).to_response()


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    return FrameworkError(403).to_response()
