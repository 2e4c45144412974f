"""What the metrics cost: `python -m bench.metrics_ab [--quick] [--rounds 3] [--server daphne] [--out bench/results]`.

Runs the three throughput scenarios of `bench.run` at saturation (client->agent, agent->client, webhook ingress)
against a fresh gateway with METRICS_ENABLED=false, then against one with METRICS_ENABLED=true, and repeats the pair
`--rounds` times (off, on, off, on, ...), so that drift of the machine falls on both sides. For each scenario it
records the throughput and the server process's CPU time per frame or request (user + system, from /proc): with the
load generators sharing the machine's two cores, throughput varies from run to run by far more than counting costs,
while the server's CPU time per unit of work is steadier. Then it times the counting calls themselves, in this
process. Prints the medians and the cost of counting (off -> on, in percent), and writes `metrics_ab.json` to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report, run
from bench.common import raise_fd_limit, start_server

# (label, getter, True when more is better)
SCENARIOS: list[tuple[str, report.Getter, bool]] = [
    ("client->agent (frames/s)", lambda r: r["client_to_agent"]["frames_per_s"], True),
    ("agent->client (frames/s)", lambda r: r["agent_to_client"]["deliveries_per_s"], True),
    ("ingress (requests/s)", lambda r: r["ingress"]["saturation"]["requests_per_s"], True),
    ("client->agent server CPU (us/frame)", lambda r: r["client_to_agent"]["server_cpu_us"], False),
    ("agent->client server CPU (us/frame)", lambda r: r["agent_to_client"]["server_cpu_us"], False),
    ("ingress server CPU (us/request)", lambda r: r["ingress"]["server_cpu_us"], False),
]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (/proc/<pid>/stat, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_server(kind: str, metrics_on: bool, scale: float, deadline: float) -> dict[str, Any]:
    return three_scenarios(kind, {"METRICS_ENABLED": "true" if metrics_on else "false"}, scale, deadline)


def three_scenarios(kind: str, env: dict[str, str], scale: float, deadline: float) -> dict[str, Any]:
    """client->agent, agent->client and ingress at saturation on a fresh server started with `env`, each with the
    server's CPU time per unit of work (also used by bench.hardening_ab)."""
    server = start_server(kind, extra_env=env)
    pid = server.process.pid

    def measured(action: Callable[[], dict[str, Any]], units: Callable[[dict[str, Any]], int]) -> dict[str, Any]:
        before = cpu_seconds(pid)
        result = action()
        result["server_cpu_us"] = round((cpu_seconds(pid) - before) * 1e6 / max(1, units(result)), 1)
        return result

    try:
        base = server.url
        return {
            "client_to_agent": measured(
                lambda: run.client_to_agent(base, False, frames=int(4000 * scale), rate=0, deadline=deadline),
                lambda r: int(r["received"]),
            ),
            "agent_to_client": measured(
                lambda: run.a2c_saturation(base, False, scale=scale, deadline=deadline),
                lambda r: int(r["delivered"]),
            ),
            "ingress": measured(
                lambda: run.ingress(
                    base, requests=int(3000 * scale), rate=0, deadline=deadline, phases=("saturation",)
                ),
                lambda r: int(r["saturation"]["samples"]),
            ),
        }
    finally:
        server.stop()


def summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out = {}
    for label, get, higher_is_better in SCENARIOS:
        off = [get(r) for r in runs["off"]]
        on = [get(r) for r in runs["on"]]
        median_off, median_on = statistics.median(off), statistics.median(on)
        worse = (median_off - median_on) if higher_is_better else (median_on - median_off)
        out[label] = {
            "off": off,
            "on": on,
            "median_off": median_off,
            "median_on": median_on,
            "cost_percent": round(100 * worse / median_off, 1) if median_off else None,
        }
    return out


def micro(calls: int = 200_000) -> dict[str, float]:
    """Nanoseconds per counting call, measured in this process on the code the server runs."""
    from gateway_site import metrics

    def ns(case: Callable[[], object]) -> float:
        return round(min(timeit.repeat(case, number=calls, repeat=5)) / calls * 1e9)

    def agent_frame() -> None:
        metrics.agent_frame_relayed(512, metrics.agent_frame_received())

    started = time.perf_counter()
    metrics.configure(node_id="bench", enabled=True)
    out = {
        "client_frame_relayed (per client frame)": ns(lambda: metrics.client_frame_relayed(512, started)),
        "agent_frame_received + _relayed (per agent frame)": ns(agent_frame),
        "http_request (per HTTP request)": ns(lambda: metrics.http_request("POST", 202, 0.001, ingress=False)),
        "http_request (per webhook)": ns(lambda: metrics.http_request("POST", 201, 0.01, ingress=True)),
    }
    metrics.configure(node_id="bench", enabled=False)
    out["any of them, counting off"] = ns(lambda: metrics.client_frame_relayed(512, started))
    return out


def table(result: dict[str, dict[str, Any]], calls: dict[str, float]) -> str:
    lines = [f"{'scenario (saturation)':38}{'off (median)':>14}{'on (median)':>14}{'cost':>9}   runs off / on"]
    lines.append("-" * len(lines[0]))
    for label, row in result.items():
        runs = f"{' '.join(f'{v:g}' for v in row['off'])} / {' '.join(f'{v:g}' for v in row['on'])}"
        lines.append(
            f"{label:38}{row['median_off']:>14.1f}{row['median_on']:>14.1f}{row['cost_percent']:>8.1f}%   {runs}"
        )
    lines.append("")
    lines += [f"{name:52}{value:>8.0f} ns" for name, value in calls.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the load (a smoke run)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", default="daphne", choices=("daphne", "uvicorn"))
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    raise_fd_limit()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings")
    scale, deadline = (0.1, 60.0) if args.quick else (1.0, 120.0)
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for round_number in range(1, args.rounds + 1):
        for setting in ("off", "on"):
            print(f"== round {round_number}: metrics {setting}", file=sys.stderr, flush=True)
            runs[setting].append(one_server(args.server, setting == "on", scale, deadline))
    result = summary(runs)
    calls = micro()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "server": args.server,
        "quick": args.quick,
        "rounds": args.rounds,
        "summary": result,
        "calls_ns": calls,
        "runs": runs,
    }
    (out / "metrics_ab.json").write_text(json.dumps(document, indent=2))
    print(table(result, calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
