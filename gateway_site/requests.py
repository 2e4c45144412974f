"""Typed requests: what `gateway_site.auth.BearerAuthMiddleware` adds to a Django request."""

from __future__ import annotations

from django.http import HttpRequest

from gateway_site.auth import Principal


class GatewayRequest(HttpRequest):
    """Any request past the bearer middleware: `principal` is None when the caller is anonymous."""

    principal: Principal | None


class ApiRequest(GatewayRequest):
    """A request to an authenticated `/gateway/v1/*` view: the middleware has refused it unless the token was valid."""

    principal: Principal
