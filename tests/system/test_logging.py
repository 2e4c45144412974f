"""One redacted line per request, in text or JSON, with the client IP honouring PROXY_HEADER."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from gateway_site.accesslog import redact_path
from gateway_site.asgi import application
from gateway_site.logging import GatewayFormatter
from tests.relay_helpers import AgentSocket


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access_log():
    handler = Capture()
    logger = logging.getLogger("gateway.access")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


async def get(path: str, headers: dict[str, str] | None = None, client=("203.0.113.9", 5000)) -> httpx.Response:
    transport = httpx.ASGITransport(app=application, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        return await http.get(path, headers=headers)


async def test_each_request_is_logged_once_with_its_fields(access_log):
    await get("/healthz?code=secret-code")
    assert len(access_log) == 1
    fields = access_log[0].fields
    assert fields["method"] == "GET"
    assert fields["path"] == "/healthz"
    assert fields["status"] == 200
    assert fields["client_ip"] == "203.0.113.9"
    assert fields["duration_ms"] >= 0
    assert "secret-code" not in GatewayFormatter("text").format(access_log[0])


async def test_a_refused_upgrade_is_logged_with_the_status_it_was_refused_with(access_log):
    socket = AgentSocket(application, None)  # no bearer token: refused with 401 through the denial extension
    assert not await socket.connect()
    assert socket.denial is not None and socket.denial[0] == 401
    [record] = access_log
    assert (record.fields["method"], record.fields["status"]) == ("WS", 401)


@pytest.mark.django_db(transaction=True)
async def test_route_and_invite_tokens_are_redacted(access_log):
    await get("/integrations/rt_1/route-token-value")
    await get("/share/invite-token-value")
    lines = [GatewayFormatter("json").format(r) for r in access_log]
    assert json.loads(lines[0])["path"] == "/integrations/rt_1/[redacted]"
    assert json.loads(lines[1])["path"] == "/share/[redacted]"
    assert all("token-value" not in line for line in lines)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/integrations/r/t", "/integrations/r/[redacted]"),
        ("/integrations/r/t/extra", "/integrations/r/[redacted]/extra"),
        ("/share/abc", "/share/[redacted]"),
        ("/gateway/v1/devices", "/gateway/v1/devices"),
    ],
)
def test_redact_path(path, expected):
    assert redact_path(path) == expected


async def test_proxy_header_gives_the_client_ip(access_log, settings):
    settings.GATEWAY = type(settings.GATEWAY)(**{**settings.GATEWAY.__dict__, "proxy_header": "X-Forwarded-For"})
    await get("/healthz", headers={"X-Forwarded-For": " 10.0.0.1 , 198.51.100.7 "})  # counted from the right (H4)
    await get("/healthz", headers={"X-Forwarded-For": ""})
    assert [r.fields["client_ip"] for r in access_log] == ["198.51.100.7", "203.0.113.9"]


async def test_proxy_header_is_ignored_when_not_configured(access_log):
    await get("/healthz", headers={"X-Forwarded-For": "198.51.100.7"})
    assert access_log[0].fields["client_ip"] == "203.0.113.9"


def test_json_format_is_one_object_per_line():
    record = logging.LogRecord("gateway", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    record.fields = {"a": 1, "b": "x y"}
    data = json.loads(GatewayFormatter("json").format(record))
    assert data["msg"] == "hello world" and data["level"] == "warning" and data["a"] == 1 and data["b"] == "x y"
    text = GatewayFormatter("text").format(record)
    assert "\n" not in text and text.endswith('WARNING gateway hello world a=1 b="x y"')


@pytest.mark.parametrize(
    "created",
    [0.0, 1_764_892_800.0, 1_764_892_800.0005, 1_764_892_800.9994, 1_764_892_800.9999996, 154_095_372.99699983],
)
def test_log_timestamp_matches_datetime_formatting(created):
    """The per-second cache gives what formatting the whole datetime gives, rounding included."""
    from datetime import UTC, datetime

    from gateway_site.logging import log_timestamp

    expected = datetime.fromtimestamp(created, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert log_timestamp(created) == expected
    assert (
        log_timestamp(created + 1)
        == datetime.fromtimestamp(created + 1, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    )
