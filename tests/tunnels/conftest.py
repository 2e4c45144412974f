"""Fixtures shared by the tunnel tests."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from gateway_site.asgi import application
from tests.relay_helpers import http_client, register
from tests.tunnels.test_tunnel_and_ingress import DEVICE


@pytest.fixture
async def setup():
    """The owner's device, and an HTTP client on the whole application."""
    await sync_to_async(register)(DEVICE, "owner-1")
    async with http_client(application) as http:
        yield http
