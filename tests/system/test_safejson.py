"""decisions.md H9: JSON nested deeper than 64 levels, or anything the parser chokes on, is the endpoint's documented
400 (HTTP) or `invalid_json` frame (sockets); nothing crashes."""

from __future__ import annotations

import pytest

from gateway_site import safejson


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_depth_limit_is_64():
    assert safejson.depth(safejson.loads(nested(64))) == 64
    with pytest.raises(safejson.InvalidJson):
        safejson.loads(nested(65))
    with pytest.raises(safejson.InvalidJson):
        safejson.loads(nested(100_000))  # a RecursionError inside the C parser
    with pytest.raises(safejson.InvalidJson):
        safejson.loads(b'{"a":' * 70 + b"1" + b"}" * 70)


@pytest.mark.parametrize("raw", [b"\xff\xfe", "{", "", "[1,]", b'{"a": NaN', "\ud800"])
def test_every_parse_failure_is_invalid_json(raw):
    with pytest.raises(safejson.InvalidJson):
        safejson.loads(raw)


def test_wide_but_shallow_json_is_fine():
    data = safejson.loads("[" + ",".join(["[1]"] * 10_000) + "]")
    assert len(data) == 10_000 and safejson.depth(data) == 2


def test_deep_json_is_the_documented_400_on_http(client):
    from tests.relay_helpers import auth, token_for

    response = client.post(
        "/gateway/v1/shares/invites", nested(100_000), content_type="application/json", **auth(token_for("owner-1"))
    )
    assert response.status_code == 400 and response.json() == {"error": "invalid json body"}
