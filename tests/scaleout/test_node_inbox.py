"""The inboxes that carry delivery between gateway processes (gateway_site.nodes), on a real Redis server through
channels_redis: two inboxes with a layer each stand for two processes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from channels_redis.core import RedisChannelLayer

from gateway_site.nodes import NODES_GROUP, NodeInbox, address, elsewhere, inbox_name, split


@pytest.fixture
async def pair(redis_url):
    """Inboxes `a` and `b` of two processes sharing one Redis (a key prefix of their own), both reading."""
    prefix = f"test:{uuid.uuid4().hex}:"
    hosts = [{"address": redis_url, "socket_timeout": 15}]  # as the settings: above the layer's 5 s blocking read
    layers = [RedisChannelLayer(hosts=hosts, prefix=prefix, capacity=20) for _ in range(2)]
    inboxes = [
        NodeInbox(node_id=f"node-{name}-{uuid.uuid4().hex[:6]}", layer=layer)
        for name, layer in zip("ab", layers, strict=True)
    ]
    yield inboxes
    for one in inboxes:
        await one.stop()
    await layers[0].flush()
    for layer in layers:
        await layer.close_pools()


async def members(one: NodeInbox, group: str) -> set[bytes]:
    """The channels in `group`, read from Redis as channels_redis keeps them."""
    layer: Any = one.layer
    return set(await layer.connection(0).zrange(layer._group_key(group), 0, -1))


async def started(*inboxes: NodeInbox) -> None:
    """Start reading, and wait until each inbox is in the group of every process."""
    for one in inboxes:
        one.start()
    for _ in range(200):
        if {inbox_name(one.node_id).encode() for one in inboxes} <= await members(inboxes[0], NODES_GROUP):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the inboxes did not join the group of every process")


async def test_a_request_is_answered_by_the_handler_of_the_other_process(pair):
    a, b = pair
    seen = []

    async def double(message):
        seen.append((message["origin"], message["n"]))
        return {"twice": message["n"] * 2}

    b.handle("test.double", double)
    await started(a, b)
    assert await a.request(b.node_id, {"type": "test.double", "n": 21}) == {"twice": 42}
    assert seen == [(a.node_id, 21)]
    assert a.pending_count() == 0


async def test_no_answer_within_the_bound_is_none(pair):
    a, b = pair
    gate = asyncio.Event()

    async def stuck(message):
        await gate.wait()
        return True

    b.handle("test.stuck", stuck)
    await started(a, b)
    assert await a.request(b.node_id, {"type": "test.stuck"}, timeout=0.3) is None
    assert await a.request("node-that-never-ran", {"type": "test.stuck"}, timeout=0.3) is None
    assert a.pending_count() == 0
    gate.set()


async def test_a_failing_handler_answers_none_and_the_inbox_goes_on(pair):
    a, b = pair

    async def broken(message):
        raise ValueError("boom")

    async def fine(message):
        return "ok"

    b.handle("test.broken", broken)
    b.handle("test.fine", fine)
    await started(a, b)
    assert await a.request(b.node_id, {"type": "test.broken"}) is None
    assert await a.request(b.node_id, {"type": "test.unknown"}, timeout=0.3) is None  # no handler: ignored
    assert await a.request(b.node_id, {"type": "test.fine"}) == "ok"


async def test_a_slow_handler_does_not_hold_up_the_others(pair):
    a, b = pair
    gate = asyncio.Event()

    async def slow(message):
        await gate.wait()
        return "slow"

    async def quick(message):
        return "quick"

    b.handle("test.slow", slow)
    b.handle("test.quick", quick)
    await started(a, b)
    waiting = asyncio.ensure_future(a.request(b.node_id, {"type": "test.slow"}))
    assert await a.request(b.node_id, {"type": "test.quick"}) == "quick"
    gate.set()
    assert await waiting == "slow"


async def test_ordered_messages_are_served_in_the_order_they_were_sent(pair):
    a, b = pair
    got: list[int] = []
    done = asyncio.Event()

    async def record(message):
        got.append(message["n"])
        if len(got) == 15:
            done.set()

    b.handle("test.ordered", record, ordered=True)
    await started(a, b)
    for n in range(15):
        assert await a.send(b.node_id, {"type": "test.ordered", "n": n})
    await asyncio.wait_for(done.wait(), timeout=10)
    assert got == list(range(15))


async def test_a_group_message_reaches_the_other_members_but_not_its_sender(pair):
    a, b = pair
    got: dict[str, list[str]] = {a.node_id: [], b.node_id: []}
    arrived = asyncio.Event()

    def recorder(node_id):
        async def record(message):
            got[node_id].append(message["text"])
            arrived.set()

        return record

    a.handle("test.event", recorder(a.node_id), ordered=True)
    b.handle("test.event", recorder(b.node_id), ordered=True)
    await started(a, b)
    await a.join("test.session.1")
    await b.join("test.session.1")
    assert a.in_group("test.session.1") and b.in_group("test.session.1")

    assert await a.group_send("test.session.1", {"type": "test.event", "text": "from a"})
    await asyncio.wait_for(arrived.wait(), timeout=10)
    assert got == {a.node_id: [], b.node_id: ["from a"]}

    # After b leaves, a group message of a reaches nobody; a broadcast reaches every other process.
    await b.leave("test.session.1")
    assert not b.in_group("test.session.1")
    arrived.clear()
    assert await a.group_send("test.session.1", {"type": "test.event", "text": "after leave"})
    assert await a.broadcast({"type": "test.event", "text": "to all"})
    await asyncio.wait_for(arrived.wait(), timeout=10)
    assert got == {a.node_id: [], b.node_id: ["from a", "to all"]}


async def test_a_full_inbox_refuses_the_message_and_says_so_once_a_minute(pair, caplog):
    a, b = pair  # b never reads: its inbox fills up at the layer's capacity (20), as a dead process's does
    results = [await a.send(b.node_id, {"type": "test.fill", "n": n}) for n in range(25)]
    assert results == [True] * 20 + [False] * 5
    assert await a.request(b.node_id, {"type": "test.fill"}, timeout=0.3) is None
    warnings = [r for r in caplog.records if r.getMessage() == "node inbox: send failed"]
    assert len(warnings) == 1 and warnings[0].fields["to"] == b.node_id


async def test_stopping_leaves_the_groups_and_gives_up_waiting_requests(pair):
    a, b = pair
    gate = asyncio.Event()

    async def stuck(message):
        await gate.wait()

    b.handle("test.stuck", stuck)
    await started(a, b)
    await a.join("test.session.2")
    waiting = asyncio.ensure_future(a.request(b.node_id, {"type": "test.stuck"}, timeout=30))
    for _ in range(200):
        if a.pending_count():
            break
        await asyncio.sleep(0.01)
    await a.stop()
    assert await asyncio.wait_for(waiting, timeout=5) is None
    assert not a.running() and not a.in_group("test.session.2")
    for group in ("test.session.2", NODES_GROUP):
        assert inbox_name(a.node_id).encode() not in await members(a, group)
    await a.stop()  # a second stop does nothing
    gate.set()


def test_addresses_name_the_process_only_when_several_run(configure):
    configure(state_backend="memory", node_id="node-x")
    assert address("agt:7") == "agt:7"
    assert split("agt:7") == ("agt:7", "") and not elsewhere("")
    configure(state_backend="redis", node_id="node-x")
    assert address("agt:7") == "agt:7@node-x"
    assert split("agt:7@node-y@z") == ("agt:7", "node-y@z")  # a node id may hold any character
    assert elsewhere("node-y") and not elsewhere("node-x")


def test_inbox_names_are_valid_channel_names_for_any_node_id():
    names = {inbox_name(node) for node in ("a", "host-123", "ünïcode node/with spaces", "x" * 500)}
    assert len(names) == 4
    assert all(RedisChannelLayer().require_valid_channel_name(name) for name in names)
