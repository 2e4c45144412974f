"""The relay's delivery seam with STATE_BACKEND=redis, in one process on the test settings' in-memory channel layer
(relay.delivery, gateway_site.nodes): a process is among a session's followers exactly while it has streams of the
session, its own streams get each event once and directly, other followers get it in their inbox, and events from
another process reach the streams here in order."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.layers import get_channel_layer

from gateway_site.nodes import inbox, inbox_name
from relay import delivery
from relay.registry import StreamEvent
from relay.session_store import sessions


class Subscriber:
    def __init__(self, uid: str = "u1") -> None:
        self.uid, self.device_id = uid, "dev_1"
        self.offered: list[tuple[int, str, str]] = []
        self.ended: list[str | None] = []
        self.changed = asyncio.Event()

    def offer(self, event: StreamEvent) -> None:
        self.offered.append((event.event_id, event.name, event.data))
        self.changed.set()

    def end(self, reason: str | None) -> None:
        self.ended.append(reason)
        self.changed.set()


@pytest.fixture
async def shared(configure):
    configure(state_backend="redis", node_id=f"node-{uuid.uuid4().hex[:8]}")
    yield get_channel_layer()
    await inbox.stop()


async def test_a_process_follows_a_session_while_it_has_streams_of_it(shared):
    sid = str(uuid.uuid4())
    first, second = Subscriber(), Subscriber()
    await delivery.subscribe(sid, first)
    assert await sessions.followers(sid) == {inbox.node_id}
    assert inbox.running()  # the other followers' messages come through the inbox
    await delivery.subscribe(sid, second)
    await delivery.unsubscribe(sid, first)
    assert await sessions.followers(sid) == {inbox.node_id}
    await delivery.unsubscribe(sid, second)
    assert await sessions.followers(sid) == set()
    await delivery.unsubscribe(sid, second)  # a second teardown changes nothing


async def test_concurrent_joins_and_leaves_settle_on_the_streams_left(shared):
    sid = str(uuid.uuid4())
    subscribers = [Subscriber() for _ in range(10)]
    await asyncio.gather(*(delivery.subscribe(sid, s) for s in subscribers))
    await asyncio.gather(*(delivery.unsubscribe(sid, s) for s in subscribers[:9]))
    assert await sessions.followers(sid) == {inbox.node_id}
    await delivery.unsubscribe(sid, subscribers[9])
    assert await sessions.followers(sid) == set()


async def test_own_streams_get_each_event_once_and_others_events_in_order(shared):
    sid = str(uuid.uuid4())
    mine = Subscriber()
    await delivery.subscribe(sid, mine)
    await delivery.publish_session_event(sid, 1, "session.message", '{"n":1}')
    assert mine.offered == [(1, "session.message", '{"n":1}')]  # served directly, before any layer hop

    # Events of another process arrive in this process's inbox, in the order it sent them.
    batch = {"type": delivery.SESSION_EVENTS, "events": [[sid, 2, "e", "2"], [sid, 3, "e", "3"]]}
    await shared.send(inbox_name(inbox.node_id), {**batch, "origin": "node-other"})
    malformed = {"type": delivery.SESSION_EVENTS, "events": [[sid, "x", "e", "bad"], "junk", [sid, 4]]}
    await shared.send(inbox_name(inbox.node_id), {**malformed, "origin": "node-other"})
    last = {"type": delivery.SESSION_EVENTS, "events": [[sid, 4, "e", "4"]]}
    await shared.send(inbox_name(inbox.node_id), {**last, "origin": "node-other"})
    end = {"type": delivery.SESSION_END, "session_id": sid, "reason": "grant_revoked", "uid": "u1"}
    await shared.send(inbox_name(inbox.node_id), {**end, "origin": "node-other"})
    for _ in range(200):
        if mine.ended:
            break
        mine.changed.clear()
        await asyncio.wait_for(mine.changed.wait(), timeout=5)
    assert [event[0] for event in mine.offered] == [1, 2, 3, 4]
    assert mine.ended == ["grant_revoked"]


async def test_other_followers_get_events_and_endings_in_their_inbox_and_this_process_gets_none(shared):
    sid = str(uuid.uuid4())
    await sessions.follow(sid, "node-other")
    await sessions.follow(sid, inbox.node_id)  # recorded for this process, yet served directly, never by message
    await delivery.publish_session_event(sid, 7, "session.event", '{"n":7}')
    await delivery.end_session_streams(sid, "expired")
    other = inbox_name("node-other")
    first = await asyncio.wait_for(shared.receive(other), timeout=5)
    second = await asyncio.wait_for(shared.receive(other), timeout=5)
    assert (first["type"], first["events"], first["origin"]) == (
        delivery.SESSION_EVENTS,
        [[sid, 7, "session.event", '{"n":7}']],
        inbox.node_id,
    )
    assert (second["type"], second["reason"]) == (delivery.SESSION_END, "expired")
    assert not inbox.running()  # so nothing read this process's inbox, and nothing was sent there:
    assert not shared.channels.get(inbox_name(inbox.node_id))
    await sessions.unfollow(sid, "node-other")
    await sessions.unfollow(sid, inbox.node_id)


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


async def test_a_batch_of_events_reaches_each_other_follower_as_one_message_in_order(shared):
    s1, s2 = str(uuid.uuid4()), str(uuid.uuid4())
    mine = Subscriber()
    await delivery.subscribe(s1, mine)
    both, one = frozenset({"node-x", "node-y", inbox.node_id}), frozenset({"node-y"})
    await delivery.publish_session_events([(s1, 1, "e", "a", both), (s2, 2, "e", "b", one), (s1, 3, "e", "c", both)])
    assert mine.offered == [(1, "e", "a"), (3, "e", "c")]
    x = await asyncio.wait_for(shared.receive(inbox_name("node-x")), timeout=5)
    y = await asyncio.wait_for(shared.receive(inbox_name("node-y")), timeout=5)
    assert x["events"] == [[s1, 1, "e", "a"], [s1, 3, "e", "c"]]
    assert y["events"] == [[s1, 1, "e", "a"], [s2, 2, "e", "b"], [s1, 3, "e", "c"]]
    assert not shared.channels.get(inbox_name("node-x")) and not shared.channels.get(inbox_name("node-y"))
    await delivery.unsubscribe(s1, mine)
