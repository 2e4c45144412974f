"""Django middleware: CORS per docs/protocol/config.md §7 (gateway_site.cors, on django-cors-headers' request
handling) and the one place errors are rendered."""

from __future__ import annotations

import logging

from corsheaders.middleware import CorsMiddleware
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.utils.deprecation import MiddlewareMixin

from gateway_site import cors, outage
from gateway_site.errors import ApiError, FrameworkError, not_found, payload_too_large, server_error

logger = logging.getLogger("gateway.errors")


def _is_preflight(request: HttpRequest) -> bool:
    headers = request.headers
    return cors.is_preflight(request.method, "origin" in headers, "access-control-request-method" in headers)


class GatewayCorsMiddleware(CorsMiddleware):
    """django-cors-headers' request handling with the headers of gateway_site.cors and the contract's preflight: 204
    for every origin, before auth and routing.

    A preflight from a disallowed origin still gets 204 and the allowed methods and headers, only without
    `Access-Control-Allow-Origin`.
    """

    def check_preflight(self, request: HttpRequest) -> HttpResponseBase | None:
        if _is_preflight(request):
            response = HttpResponse(status=204)
            del response["Content-Type"]  # 204 carries no body, so no type either
            return response
        return None

    def add_response_headers(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if not self.is_enabled(request):
            return response
        # This edge has always varied on Origin, also when every origin is allowed (the django-cors-headers way).
        patch_vary_headers(response, ("origin",))
        allowed = cors.allow_origin_headers(request.headers.get("origin"))
        for name, value in allowed:
            response[name] = value
        if allowed and request.method == "OPTIONS":
            response[cors.ALLOW_HEADERS] = cors.allowed_headers()
            response[cors.ALLOW_METHODS] = cors.allowed_methods()
        if _is_preflight(request):
            response["Access-Control-Allow-Methods"] = cors.allowed_methods()
            response["Access-Control-Allow-Headers"] = cors.allowed_headers()
            patch_vary_headers(response, cors.PREFLIGHT_VARY)
        return response


class ApiErrorMiddleware(MiddlewareMixin):
    """Render every exception a view raises as the contract's JSON; never a Django HTML error page."""

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        return render_exception(exception)


def render_exception(exception: BaseException) -> HttpResponse:
    if isinstance(exception, ApiError):
        return exception.to_response()
    if isinstance(exception, Http404):
        return not_found().to_response()
    if isinstance(exception, RequestDataTooBig):
        return payload_too_large().to_response()
    if isinstance(exception, PermissionDenied):
        return FrameworkError(403).to_response()
    if isinstance(exception, SuspiciousOperation):
        # Malformed input Django refuses to parse (too many fields, bad multipart, ...): the client's fault.
        return FrameworkError(400).to_response()
    unavailable = outage.unavailable(exception)
    if unavailable is not None:  # Redis is down (docs/scaling.md "When Redis is down"): logged once per outage
        return unavailable.to_response()
    logger.error("unhandled exception", exc_info=exception)
    return server_error().to_response()
