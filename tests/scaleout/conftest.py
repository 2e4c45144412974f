"""One cluster of two gateway processes behind nginx for the module that asks for it (tests/scaleout/cluster.py)."""

from __future__ import annotations

import pytest

from tests.scaleout.cluster import gateway_cluster, require_nginx


@pytest.fixture(scope="module")
def cluster(redis_url, postgres_url):
    require_nginx()
    with gateway_cluster(redis_url, postgres_url) as running:
        yield running
