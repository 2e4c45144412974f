"""The benchmark harness keeps working: every measurement runs end to end on a few hundred frames, and the report
(table and chart) is drawn from those numbers.

No timing is asserted (performance is reported by `python -m bench.run`, never asserted by tests); the checks are
that each scenario delivers what it sent, without errors.
"""

from __future__ import annotations

import pytest

from bench import run
from bench.common import start_server

RESULTS: dict = {"server": "uvicorn"}


@pytest.fixture(scope="module")
def gateway():
    server = start_server("uvicorn")
    yield server
    server.stop()


def test_client_to_agent(gateway):
    saturation = run.client_to_agent(gateway.url, False, frames=160, rate=0, deadline=60)
    at_rate = run.client_to_agent(gateway.url, False, frames=64, rate=200, deadline=60)
    assert saturation["received"] == 160 and saturation["errors"] == 0 and saturation["samples"] == 160
    assert at_rate["received"] == 64 and at_rate["errors"] == 0
    RESULTS["client_to_agent"] = {"saturation": saturation, "at_300_per_s": at_rate}


def test_agent_to_client_and_fan_out(gateway):
    saturation = run.agent_to_client(gateway.url, False, frames=200, rate=0, sessions=4, subscribers=1, deadline=60)
    at_rate = run.agent_to_client(gateway.url, False, frames=100, rate=500, sessions=4, subscribers=1, deadline=60)
    fan_out = run.agent_to_client(gateway.url, False, frames=40, rate=0, sessions=1, subscribers=3, deadline=60)
    assert saturation["delivered"] == saturation["expected"] == 200
    assert at_rate["delivered"] == 100 and fan_out["delivered"] == 120
    RESULTS["agent_to_client"] = {"saturation": saturation, "at_1000_per_s": at_rate}
    RESULTS["fan_out"] = fan_out


def test_ingress(gateway):
    result = run.ingress(gateway.url, requests=60, rate=100, deadline=60)
    assert result["saturation"]["errors"] == 0 and result["saturation"]["samples"] == 60
    assert result["fixed_rate"]["errors"] == 0
    RESULTS["ingress"] = result


def test_idle_sockets_and_storm(gateway):
    result = run.idle_and_storm(gateway, sockets=20, storm=10, deadline=60, storm_window=1.0)
    assert result["idle"]["sockets"] == 20 and result["idle"]["connect_errors"] == 0
    assert result["storm"]["errors"] == 0 and result["storm"]["seconds_until_presence_right"] is not None
    RESULTS["idle"], RESULTS["reconnect_storm"] = result["idle"], result["storm"]


def test_baseline_and_report(tmp_path):
    baseline = start_server("uvicorn", app="baseline")
    try:
        c2a = run.client_to_agent(baseline.url, True, frames=160, rate=0, deadline=60)
        a2c = run.agent_to_client(baseline.url, True, frames=200, rate=0, sessions=4, subscribers=1, deadline=60)
    finally:
        baseline.stop()
    assert c2a["received"] == 160 and a2c["delivered"] == 200
    if "ingress" not in RESULTS:
        pytest.skip("the scenarios above did not all run")
    RESULTS["baseline"] = {"client_to_agent": c2a, "agent_to_client": a2c}
    RESULTS["ratio_to_baseline"] = {"client_to_agent": 1.0, "agent_to_client": 1.0}
    text = run.table([RESULTS])
    assert "agent->client saturation (frames/s)" in text and "uvicorn" in text
    run.chart([RESULTS], tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
