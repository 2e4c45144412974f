"""The real URL configuration plus views that fail, to exercise the error rendering."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.urls import path

from gateway_site import urls
from gateway_site.errors import Conflict
from gateway_site.views import api_view


@api_view("GET")
def crash(request):
    raise RuntimeError("secret internal detail")


@api_view("GET")
def conflict(request):
    raise Conflict("handshake already acknowledged", handshake_id="hs_1")


@api_view("POST")
def too_big(request):
    raise RequestDataTooBig("too big")


urlpatterns = [
    path("test-crash", crash),
    path("test-conflict", conflict),
    path("test-too-big", too_big),
    *urls.urlpatterns,
]
