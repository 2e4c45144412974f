"""Records taken at ingress and built when first read (tunnels.inspector.Pending, MemoryRequestLog): what is read is
what an eager build gives, nothing secret or unneeded is kept meanwhile, and the global bound counts them."""

from __future__ import annotations

import base64

from tunnels import inspector
from tunnels.inspector import MemoryRequestLog, Outcome, Pending

TOKEN = "rtok_secret_0123456789"
RAW_HEADERS = [
    (b"host", b"hooks.example"),
    (b"content-type", b"application/json"),
    (b"authorization", b"Bearer abc"),
    (b"x-forwarded-uri", f"/integrations/rt_1/{TOKEN}".encode()),
]


def outcome(body: bytes | None = b'{"hook":"https://gw/integrations/rt_1/' + TOKEN.encode() + b'"}') -> Outcome:
    answer = Outcome(body=body)
    answer.see({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    answer.see({"type": "http.response.body", "body": b"ok"})
    answer.answered = True
    return answer


def pending(answer: Outcome, *, capture: bool, query: str = f"t={TOKEN}") -> Pending:
    return Pending(
        method="POST",
        query=query,
        headers=inspector.record_headers(RAW_HEADERS, token=TOKEN),
        declared_size=0,
        outcome=answer,
        capture_bodies=capture,
        token=TOKEN,
    )


def test_a_pending_record_builds_the_redacted_record():
    for capture in (False, True):
        answer = outcome()
        answer.record_id = inspector.new_request_id()
        record = pending(answer, capture=capture).build()
        assert record["request_id"] == answer.record_id
        assert record["received_at"] == inspector.received_at(answer.started)
        assert (record["method"], record["delivery"], record["status"]) == ("POST", "live", 200)
        assert record["body_size"] == len(answer.body or b"") and record["verified"] is None
        assert record["query"] == "t=[redacted]" and record["headers"]["authorization"] == "[redacted]"
        assert record["headers"]["x-forwarded-uri"] == "/integrations/rt_1/[redacted]"
        assert record["response"] == {"status": 200, "headers": {"content-type": "text/plain"}, "body_size": 2}
        assert record["replay_of"] is None
        if capture:
            kept = (answer.body or b"").replace(TOKEN.encode(), b"[redacted]")
            assert base64.b64decode(record["body_base64"]) == kept
        else:
            assert "body_base64" not in record


def test_a_pending_record_keeps_neither_the_token_nor_an_uncaptured_body():
    answer = outcome()
    for capture in (False, True):
        taken = pending(answer, capture=capture)
        kept = [getattr(taken, name) for name in Pending.__slots__]
        assert not any(value is answer.body for value in kept)
        text = repr(kept)
        assert TOKEN not in text and "Bearer abc" not in text
        assert (taken.kept_body is not None) is capture
    large = pending(outcome(b"x" * (inspector.MAX_BODY_BYTES + 1)), capture=True)
    assert large.kept_body is None and large.build()["body_truncated"] is True
    assert large.build()["body_size"] == inspector.MAX_BODY_BYTES + 1


def test_the_hint_is_near_the_exact_size():
    for body in (b"", b"{}", b"x" * 1000, bytes(range(256)) * 8):
        for capture in (False, True):
            taken = pending(outcome(body), capture=capture)
            exact = inspector.stored_size(taken.build())
            assert exact <= taken.size_hint() <= exact + 400, (body[:8], capture, exact, taken.size_hint())


async def test_pending_records_in_the_memory_store():
    log = MemoryRequestLog(max_records=3)
    taken = [pending(outcome(), capture=True) for _ in range(4)]
    for record in taken:
        await log.append("rt_1", record)
    assert await log.count("rt_1") == 3  # the oldest dropped unbuilt
    assert await log.stored_bytes() == sum(record.size_hint() for record in taken[1:])
    # Read by id: built once, the same record every time after, and counted at its exact size from then on.
    first = await log.get("rt_1", taken[3].request_id)
    assert first is not None and first["request_id"] == taken[3].request_id
    assert await log.get("rt_1", taken[3].request_id) is first
    assert await log.get("rt_1", taken[0].request_id) is None
    assert await log.stored_bytes() == inspector.stored_size(first) + sum(r.size_hint() for r in taken[1:3])
    listed = await log.recent("rt_1", 10)
    assert [r["request_id"] for r in listed] == [r.request_id for r in reversed(taken[1:])]
    assert listed[0] is first
    assert await log.stored_bytes() == sum(inspector.stored_size(r) for r in listed)
    # An update finds a record that was never built.
    fresh = pending(outcome(), capture=False)
    await log.append("rt_1", fresh)
    changed = {**fresh.build(), "delivery": "live", "status": 201}
    assert await log.update("rt_1", changed)
    assert (await log.recent("rt_1", 1))[0] == changed


async def test_the_global_bound_counts_pending_records():
    log = MemoryRequestLog(max_total_bytes=3 * pending(outcome(), capture=True).size_hint())
    for route in ("rt_a", "rt_b", "rt_c", "rt_d"):
        await log.append(route, pending(outcome(), capture=True))
    assert await log.count("rt_a") == 0  # the route written least recently went first
    assert [await log.count(route) for route in ("rt_b", "rt_c", "rt_d")] == [1, 1, 1]
