"""decisions.md H4: with X-Forwarded-For the client is counted from the right, PROXY_TRUSTED_HOPS entries in; a
single-value header is used whole."""

from __future__ import annotations

import pytest

from gateway_site.clientip import client_ip_from_scope


@pytest.mark.parametrize(
    ("hops", "value", "expected"),
    [
        (1, "6.6.6.6, 203.0.113.7", "203.0.113.7"),  # whatever the client wrote on the left is ignored
        (1, "1.1.1.1, 2.2.2.2, 203.0.113.7", "203.0.113.7"),
        (2, "6.6.6.6, 203.0.113.7, 10.0.0.2", "203.0.113.7"),  # two proxies: the client is second from the right
        (2, "203.0.113.7", "203.0.113.7"),  # fewer entries than hops: the one there is
        (1, "203.0.113.7", "203.0.113.7"),
        (3, " , 203.0.113.7 ,, 10.0.0.2, 10.0.0.3", "203.0.113.7"),
    ],
)
def test_the_client_is_counted_from_the_right(configure, hops, value, expected):
    configure(proxy_header="X-Forwarded-For", proxy_trusted_hops=hops)
    scope = {"headers": [(b"x-forwarded-for", value.encode())], "client": ("10.0.0.1", 4000)}
    assert client_ip_from_scope(scope) == expected


def test_forty_spoofed_left_entries_share_one_budget(configure):
    configure(proxy_header="X-Forwarded-For", proxy_trusted_hops=1)
    seen = {
        client_ip_from_scope({"headers": [(b"x-forwarded-for", f"198.51.100.{i}, 203.0.113.9".encode())]})
        for i in range(40)
    }
    assert seen == {"203.0.113.9"}
