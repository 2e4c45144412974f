"""docs/openapi.yaml and the URL configuration agree: every documented path and method is routed."""

from __future__ import annotations

import re

import pytest
import yaml
from django.urls import resolve

from gateway_site.views import fallback_not_found
from tests.helpers import ROOT

SPEC = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
METHODS = ("get", "post", "put", "delete", "patch")
FRAMEWORK_404 = {"error": "Not Found", "code": 404}


def concrete(path: str) -> str:
    """A documented path with every `{param}` replaced by its documented example, else a sample value."""
    examples = {p["name"]: p["example"] for p in SPEC["paths"].get(path, {}).get("parameters", []) if "example" in p}
    return re.sub(r"\{([^}]+)\}", lambda m: str(examples.get(m.group(1), "sample_id")), path)


OPERATIONS = [
    (path, method)
    for path, item in SPEC["paths"].items()
    for method in METHODS
    if method in item and not item[method].get("x-websocket") and not item[method].get("x-stream")
]
CONSUMER_OPERATIONS = [
    (path, "websocket" if item["get"].get("x-websocket") else "http")
    for path, item in SPEC["paths"].items()
    if "get" in item and (item["get"].get("x-websocket") or item["get"].get("x-stream"))
]


def test_the_document_is_openapi_3_1_with_paths():
    assert SPEC["openapi"].startswith("3.1")
    assert SPEC["paths"]


@pytest.mark.parametrize("path", sorted(SPEC["paths"]))
def test_every_documented_path_is_routed(path):
    match = resolve(concrete(path))
    assert match.func is not fallback_not_found, f"{path} is documented but not routed"


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_every_documented_method_is_accepted(client, path, method):
    response = getattr(client, method)(concrete(path))
    assert response.status_code != 405, f"{method.upper()} {path} answers 405"
    if response.status_code == 404 and response.get("Content-Type", "").startswith("application/json"):
        assert response.json() != FRAMEWORK_404, f"{method.upper()} {path} is not routed"


@pytest.mark.parametrize(("path", "protocol"), CONSUMER_OPERATIONS)
def test_every_documented_stream_and_socket_has_a_consumer(path, protocol):
    from django.urls import URLResolver

    from gateway_site.routing import http_consumer_routes, websocket_routes

    routes = websocket_routes if protocol == "websocket" else http_consumer_routes
    target = concrete(path).lstrip("/")
    assert any(not isinstance(r, URLResolver) and r.pattern.match(target) for r in routes), path
