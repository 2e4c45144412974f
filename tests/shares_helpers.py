"""Helpers for sharing tests: owners, grantees, invites and accepts through the API."""

from __future__ import annotations

import json

from tests.relay_helpers import auth, register, token_for

OWNER = token_for("owner-1", email="owner@example.com")
BOB = token_for("bob-2", email="bob@example.com")
EVE = token_for("eve-3", email="eve@example.com")
DEVICE = "dev_shared1"


def post_json(client, path: str, body, token: str, content_type: str = "application/json"):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data, content_type=content_type, **auth(token))


def invite(client, email: str = "bob@example.com", token: str = OWNER, device_id: str = DEVICE, **extra):
    return post_json(client, "/gateway/v1/shares/invites", {"deviceId": device_id, "email": email, **extra}, token)


def invite_token(response) -> str:
    return response.json()["inviteUrl"].rsplit("/", 1)[1]


def accept(client, invite_tok: str, token: str = BOB, **extra):
    return post_json(client, "/gateway/v1/shares/invites/accept", {"token": invite_tok, **extra}, token)


def shared_device(client, device_id: str = DEVICE) -> str:
    """Register the owner's device and share it with Bob; returns the grant id."""
    register(device_id, "owner-1", email="owner@example.com", name="office-mac")
    response = accept(client, invite_token(invite(client, device_id=device_id)))
    assert response.status_code == 200, response.content
    return response.json()["grantId"]
