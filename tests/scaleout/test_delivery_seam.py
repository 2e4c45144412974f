"""The relay's delivery seam with STATE_BACKEND=redis, in one process on the test settings' in-memory channel layer
(relay.delivery, gateway_site.nodes): a process is in a session's group exactly while it has streams of the session,
its own streams get each event once and directly, and events from another process reach them in order."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.layers import get_channel_layer

from gateway_site.nodes import inbox, inbox_name
from relay import delivery
from relay.groups import session_group


class Subscriber:
    def __init__(self, uid: str = "u1") -> None:
        self.uid, self.device_id = uid, "dev_1"
        self.offered: list[tuple[int, str, str]] = []
        self.ended: list[str | None] = []
        self.changed = asyncio.Event()

    def offer(self, event_id: int, name: str, data: str) -> None:
        self.offered.append((event_id, name, data))
        self.changed.set()

    def end(self, reason: str | None) -> None:
        self.ended.append(reason)
        self.changed.set()


@pytest.fixture
async def shared(configure):
    configure(state_backend="redis", node_id=f"node-{uuid.uuid4().hex[:8]}")
    yield get_channel_layer()
    await inbox.stop()


def members(layer, group: str) -> set[str]:
    return set(layer.groups.get(group, {}))


async def test_a_process_follows_a_session_while_it_has_streams_of_it(shared):
    sid = str(uuid.uuid4())
    first, second = Subscriber(), Subscriber()
    await delivery.subscribe(sid, first)
    assert members(shared, session_group(sid)) == {inbox_name(inbox.node_id)}
    await delivery.subscribe(sid, second)
    await delivery.unsubscribe(sid, first)
    assert members(shared, session_group(sid)) == {inbox_name(inbox.node_id)}
    await delivery.unsubscribe(sid, second)
    assert members(shared, session_group(sid)) == set()
    await delivery.unsubscribe(sid, second)  # a second teardown changes nothing


async def test_concurrent_joins_and_leaves_settle_on_the_streams_left(shared):
    sid = str(uuid.uuid4())
    subscribers = [Subscriber() for _ in range(10)]
    await asyncio.gather(*(delivery.subscribe(sid, s) for s in subscribers))
    await asyncio.gather(*(delivery.unsubscribe(sid, s) for s in subscribers[:9]))
    assert members(shared, session_group(sid)) == {inbox_name(inbox.node_id)}
    await delivery.unsubscribe(sid, subscribers[9])
    assert members(shared, session_group(sid)) == set()


async def test_own_streams_get_each_event_once_and_others_events_in_order(shared):
    sid = str(uuid.uuid4())
    mine = Subscriber()
    await delivery.subscribe(sid, mine)
    await delivery.publish_session_event(sid, 1, "session.message", '{"n":1}')
    assert mine.offered == [(1, "session.message", '{"n":1}')]  # served directly, before any layer hop

    # Events of another process arrive through the group, in the order it sent them; ours never come back.
    for n in (2, 3, 4):
        message = {"type": delivery.SESSION_EVENT, "session_id": sid, "event_id": n, "name": "e", "data": str(n)}
        await shared.group_send(session_group(sid), {**message, "origin": "node-other", "fanout": True})
    end = {"type": delivery.SESSION_END, "session_id": sid, "reason": "grant_revoked", "uid": "u1"}
    await shared.group_send(session_group(sid), {**end, "origin": "node-other", "fanout": True})
    for _ in range(200):
        if mine.ended:
            break
        mine.changed.clear()
        await asyncio.wait_for(mine.changed.wait(), timeout=5)
    assert [event[0] for event in mine.offered] == [1, 2, 3, 4]
    assert mine.ended == ["grant_revoked"]


async def test_ending_streams_reaches_only_the_named_user(shared):
    sid = str(uuid.uuid4())
    alice, bob = Subscriber("alice"), Subscriber("bob")
    await delivery.subscribe(sid, alice)
    await delivery.subscribe(sid, bob)
    await delivery.end_session_streams(sid, "grant_left", uid="bob")
    assert (alice.ended, bob.ended) == ([], ["grant_left"])
    await delivery.end_session_streams(sid, "expired")
    assert (alice.ended, bob.ended) == (["expired"], ["grant_left", "expired"])


async def test_a_device_without_a_socket_anywhere_gets_nothing(shared):
    assert await delivery.send_to_device("dev_nowhere", {"type": "session.message"}) is False
    assert await delivery.agent_connection("dev_nowhere") is None
    assert await delivery.send_to_connection("dev_nowhere", f"agt:1@{inbox.node_id}", {"type": "x"}) is False
