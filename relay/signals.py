"""Events the relay announces to the apps built on it.

`device_deleted` is sent once a device (and everything that cascades from it) is gone, with `device_id` and
`affected_uids` (the owner and the grantees who could see it). Each app that keeps live state about devices
connects an async receiver in its `AppConfig.ready`: the relay closes the agent socket and ends sessions, the
tunnels app drops the device's activations. So the relay never imports the apps that build on it.
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

from relay import delivery
from relay.session_events import sessions_device_deleted
from relay.stores import presence

device_deleted = Signal()


async def relay_device_deleted(sender: Any, *, device_id: str, affected_uids: list[str], **kwargs: Any) -> None:
    """Close the agent socket, forget the device's presence, end its sessions with `device_deleted`
    (docs/protocol/decisions.md D1, R4) and tell every user who could see it."""
    await delivery.close_device(device_id)
    await presence.clear(device_id)
    await sessions_device_deleted(device_id)
    await delivery.access_ended(uids=affected_uids, device_id=device_id, reason="device_deleted")
