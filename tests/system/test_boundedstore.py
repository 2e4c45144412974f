"""Stores of caller-chosen keys (decisions.md H3): bounded in entries, and expired keys really leave."""

from __future__ import annotations

import threading

from gateway_site import ratelimit
from gateway_site.boundedstore import BoundedStore, bounded_store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_expired_keys_are_dropped_without_being_read_again():
    clock = Clock()
    store = BoundedStore("t", ttl=10, max_entries=1000)
    store._clock = clock
    for i in range(500):
        store.set(f"garbage-{i}", i)
    assert len(store) == 500
    clock.now += 11
    store.set("fresh", 1)  # any write purges what expired
    assert len(store) == 1 and store.get("garbage-0") is None and store.get("fresh") == 1


def test_the_store_never_holds_more_than_its_bound_and_drops_the_oldest():
    store = BoundedStore("t", ttl=3600, max_entries=100)
    for i in range(10_000):
        store.add(f"key-{i}")
    assert len(store) == 100
    assert store.get("key-0") is None and store.get("key-9999") is True


def test_add_is_an_atomic_claim_and_incr_counts_every_hit():
    store = BoundedStore("t", ttl=60, max_entries=10_000)
    claims: list[bool] = []
    threads = [threading.Thread(target=lambda: claims.append(store.add("one"))) for _ in range(16)]
    counters = [threading.Thread(target=lambda: [store.incr("n") for _ in range(250)]) for _ in range(8)]
    for thread in threads + counters:
        thread.start()
    for thread in threads + counters:
        thread.join()
    assert claims.count(True) == 1 and store.get("n") == 2000


def test_an_expired_counter_starts_again_at_one():
    clock = Clock()
    store = BoundedStore("t", ttl=5, max_entries=10)
    store._clock = clock
    assert [store.incr("k") for _ in range(3)] == [1, 2, 3]
    clock.now += 6
    assert store.incr("k") == 1


async def test_rate_windows_live_in_a_bounded_store():
    for i in range(3000):
        await ratelimit.hit(f"ingress:ip:203.0.113.{i}", 10, 60)
    store = bounded_store("rate-windows", ttl=120, max_entries=ratelimit.MAX_BUCKETS)
    assert len(store) == 3000
    assert await ratelimit.hit("ingress:ip:203.0.113.1", 1, 60) is False  # counted: the second hit is over 1
