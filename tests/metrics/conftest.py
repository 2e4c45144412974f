"""Every metrics test starts from fresh counters (gateway_site.metrics.configure builds a new registry)."""

from __future__ import annotations

import pytest
from django.conf import settings

from gateway_site import metrics

NODE = "test-node-1"


@pytest.fixture(autouse=True)
def fresh_metrics():
    metrics.configure(node_id=NODE)
    yield
    metrics.configure(node_id=settings.GATEWAY.node_id, enabled=settings.GATEWAY.metrics_enabled)
