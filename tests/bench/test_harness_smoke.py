"""The benchmark harness keeps working: every measurement runs end to end on a few hundred frames, and the report
(table and chart) is drawn from those numbers.

No timing is asserted (performance is reported by `python -m bench.run`, never asserted by tests); the checks are
that each scenario delivers what it sent, without errors.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bench import compare, report, run
from bench import wrk as wrk_loader
from bench.common import start_server
from tests.helpers import real_services_required

RESULTS: dict = {"server": "uvicorn"}
# Under CI (which installs wrk) a missing wrk fails the test instead of skipping it.
needs_wrk = pytest.mark.skipif(
    not wrk_loader.available() and not real_services_required(), reason="wrk is not installed (CI installs it)"
)


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
    fan_out_at_rate = run.agent_to_client(
        gateway.url, False, frames=50, rate=500, sessions=1, subscribers=10, deadline=60
    )
    assert saturation["delivered"] == saturation["expected"] == 200
    assert at_rate["delivered"] == 100 and fan_out["delivered"] == 120
    assert fan_out_at_rate["delivered"] == 500 and fan_out_at_rate["samples"] == 500
    RESULTS["agent_to_client"] = {"saturation": saturation, "at_1000_per_s": at_rate}
    RESULTS["fan_out"], RESULTS["fan_out_at_1000_per_s"] = fan_out, fan_out_at_rate


@needs_wrk
def test_client_to_agent_with_wrk(gateway):
    """One wrk thread and connection per session, seq counted in Lua: every POST is accepted (no replay, no gap
    refused) and the agent receives at least every frame wrk saw answered."""
    result = run.client_to_agent_wrk(gateway.url, False, seconds=1, deadline=60, sessions=4)
    assert result["loader"] == "wrk" and result["errors"] == 0 and result["posted"] > 0
    assert result["posted"] <= result["received"] <= result["posted"] + 4


@needs_wrk
def test_ingress_with_wrk(gateway):
    result = run.ingress(gateway.url, requests=0, rate=0, deadline=60, phases=("saturation",), loader="wrk", seconds=1)
    assert result["saturation"]["loader"] == "wrk"
    assert result["saturation"]["errors"] == 0 and result["saturation"]["samples"] > 0
    assert result["tunnel_answered"] >= result["saturation"]["samples"]


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


@needs_wrk
def test_baseline_with_wrk_and_loader_ceiling():
    baseline = start_server("uvicorn", app="baseline")
    try:
        c2a = run.client_to_agent_wrk(baseline.url, True, seconds=1, deadline=60, sessions=4)
        ceiling = run.loader_ceiling(baseline.url, seconds=1)
    finally:
        baseline.stop()
    assert c2a["errors"] == 0 and c2a["posted"] <= c2a["received"] <= c2a["posted"] + 4
    assert ceiling["errors"] == 0 and ceiling["requests"] > 0
    RESULTS["loader_ceiling"] = ceiling


def test_wrk_script_builds_valid_envelopes():
    """The generated Lua carries each session, the bearer token and the envelope around the seq (no wrk needed)."""
    script = wrk_loader.messages_script(["sess_a", "sess_b"], "/gateway/v1/sessions/{sid}/messages", "tok")
    assert '"sess_a", "sess_b"' in script and '"Bearer tok"' in script
    assert '"/gateway/v1/sessions/%s/messages"' in script and "thread:set" in script and "function done(" in script


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
    text = report.table([RESULTS])
    assert "agent->client saturation (frames/s)" in text and "uvicorn" in text
    assert "fan-out 1x10 p99 at 1000/s (ms)" in text and "uvicorn >= 45212" in text
    report.chart([RESULTS], tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ratios = compare.ratio_table("HEAD", {"uvicorn": {"rev": RESULTS, "current": RESULTS}})
    assert "agent->client saturation (frames/s)" in ratios and "1.00" in ratios


def test_compare_exports_a_revision(tmp_path):
    """`--compare REV` runs REV's gateway: the tree is unpacked and the server runs from it."""
    commit = compare.export_tree("HEAD", tmp_path)
    assert len(commit) == 40 and (tmp_path / "gateway_site" / "asgi.py").is_file()
    server = start_server("uvicorn", source=tmp_path)
    try:
        assert Path(f"/proc/{server.process.pid}/cwd").resolve() == tmp_path.resolve()
        assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200
    finally:
        server.stop()
