"""One cluster of two gateway processes behind nginx for the module that asks for it (tests/scaleout/cluster.py)."""

from __future__ import annotations

import pytest

from tests.helpers import real_services_required
from tests.scaleout.cluster import gateway_cluster, nginx_binary


@pytest.fixture(scope="module")
def cluster(redis_url, postgres_url):
    try:
        nginx_binary()
    except FileNotFoundError as missing:
        if real_services_required():
            pytest.fail(str(missing))
        pytest.skip(str(missing))
    with gateway_cluster(redis_url, postgres_url) as running:
        yield running
