"""Django middleware: CORS per docs/protocol/config.md §7 (on django-cors-headers) and the one place errors are
rendered."""

from __future__ import annotations

import logging

from corsheaders.middleware import CorsMiddleware
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.utils.deprecation import MiddlewareMixin

from gateway_site.errors import ApiError, FrameworkError, not_found, payload_too_large, server_error

logger = logging.getLogger("gateway.errors")

_PREFLIGHT_VARY = ("Access-Control-Request-Method", "Access-Control-Request-Headers", "Origin")


def _is_preflight(request: HttpRequest) -> bool:
    return (
        request.method == "OPTIONS"
        and "origin" in request.headers
        and "access-control-request-method" in request.headers
    )


class GatewayCorsMiddleware(CorsMiddleware):
    """django-cors-headers with the contract's preflight: 204 for every origin, before auth and routing.

    A preflight from a disallowed origin still gets 204 and the allowed methods and headers, only without
    `Access-Control-Allow-Origin`.
    """

    def check_preflight(self, request: HttpRequest) -> HttpResponseBase | None:
        request._cors_enabled = self.is_enabled(request)  # type: ignore[attr-defined]
        if _is_preflight(request):
            response = HttpResponse(status=204)
            del response["Content-Type"]  # 204 carries no body, so no type either
            return response
        return None

    def add_response_headers(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        response = super().add_response_headers(request, response)
        if _is_preflight(request):
            response["Access-Control-Allow-Methods"] = ", ".join(self._methods())
            response["Access-Control-Allow-Headers"] = ", ".join(self._headers())
            patch_vary_headers(response, _PREFLIGHT_VARY)
        return response

    @staticmethod
    def _methods() -> list[str]:
        from corsheaders.conf import conf

        return list(conf.CORS_ALLOW_METHODS)

    @staticmethod
    def _headers() -> list[str]:
        from corsheaders.conf import conf

        return list(conf.CORS_ALLOW_HEADERS)


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
    logger.error("unhandled exception", exc_info=exception)
    return server_error().to_response()
