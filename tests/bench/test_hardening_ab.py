"""bench.hardening_ab keeps working, and each of its variants switches off what it claims to, and nothing else.

The script runs end to end on tiny loads for one round (no timing asserted: costs are reported by the script, never
asserted). Its own check phase starts every variant with tiny limits and probes it from outside; the stream budget,
which cannot be reached from outside without racing the stream's queue, is switched here in process instead.
"""

from __future__ import annotations

import json
from typing import Any

from bench import hardening_ab, hardening_checks, switches
from gateway_site import transport
from gateway_site.lifecycle import LifecycleMiddleware, lifecycle
from gateway_site.sse import SseConsumer


def test_the_script_runs_and_every_switch_acts(tmp_path):
    code = hardening_ab.main(["--rounds", "1", "--server", "uvicorn", "--scale", "0.02", "--out", str(tmp_path)])
    document = json.loads((tmp_path / "hardening_ab.json").read_text())
    checks = document["checks"]
    assert set(checks) == set(hardening_ab.VARIANTS)
    assert all(acted for acted in checks[hardening_ab.ALL_ON]["acted"].values())
    for item in hardening_ab.ITEMS:
        acted = checks[item]["acted"]
        assert {name for name, did in acted.items() if not did} == set(hardening_checks.CHECKS_OF[item]), item
    assert code == 0
    assert set(document["summary"]) == set(hardening_ab.ITEMS)
    for item, rows in document["summary"].items():
        assert len(rows) == len(hardening_ab.SHORT), item
        assert all(len(row["off"]) == len(row["on"]) == 1 for row in rows.values())
    runs = document["runs"][hardening_ab.ALL_ON][0]
    assert runs["client_to_agent"]["received"] == 80 and runs["agent_to_client"]["delivered"] == 200
    assert runs["ingress"]["saturation"]["errors"] == 0


class _Transport:
    def __init__(self, pending: int) -> None:
        self.pending = pending

    def get_write_buffer_size(self) -> int:
        return self.pending

    def abort(self) -> None:
        pass


class _Server:
    """What uvicorn's `send` is bound to: an object with an asyncio transport."""

    def __init__(self, pending: int) -> None:
        self.transport = _Transport(pending)

    async def send(self, message: dict[str, Any]) -> None:
        pass


async def _probe_seen_by_streams(send: Any) -> Any:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope)

    await LifecycleMiddleware(app)({"type": "http", "path": "/gateway/v1/sessions/s/events"}, None, send)
    return seen[transport.SCOPE_KEY]


async def test_the_budgets_switch_stops_the_stream_buffer_accounting(monkeypatch):
    monkeypatch.setattr(lifecycle, "signal_handler_installed", True)  # the middleware's first-call setup: not here
    server = _Server(pending=10**9)
    probe = await _probe_seen_by_streams(server.send)
    assert probe is not None and probe.pending() == 10**9
    consumer = SseConsumer()
    consumer.scope = {transport.SCOPE_KEY: probe}
    assert consumer.over_budget() and consumer.buffered_bytes() == 10**9
    restore = switches.switch_off("budgets")
    try:
        assert await _probe_seen_by_streams(server.send) is None
        assert not consumer.over_budget(10**9) and consumer.buffered_bytes() == 0
    finally:
        restore()
    assert await _probe_seen_by_streams(server.send) is not None and consumer.over_budget()
