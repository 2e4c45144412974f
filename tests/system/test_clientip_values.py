"""Whatever a caller writes in the proxy header, the client address is a canonical IP or `invalid`: it never names a
bucket of its own, and never reaches a log line raw."""

from __future__ import annotations

import pytest

from gateway_site.clientip import client_ip_from_scope


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"203.0.113.7", "203.0.113.7"),
        (b" 10.0.0.1 , 2001:DB8::1 ", "2001:db8::1"),
        (b"x" * 5000, "invalid"),
        (b"1.2.3.4\nfake log line", "invalid"),
        (b"", "198.51.100.1"),  # empty: the TCP peer
    ],
)
def test_proxy_header_values_are_normalised(configure, value, expected):
    configure(proxy_header="X-Forwarded-For")
    scope = {"headers": [(b"x-forwarded-for", value)], "client": ("198.51.100.1", 4000)}
    assert client_ip_from_scope(scope) == expected
