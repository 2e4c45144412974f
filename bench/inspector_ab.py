"""What the request inspector costs webhook ingress: `python -m bench.inspector_ab [--quick] [--rounds 3]
[--server daphne] [--loader auto|wrk|python] [--out bench/results]`.

Runs the ingress scenario of `bench.run` at saturation (32 concurrent senders, 1 KiB JSON bodies; wrk when it is
installed, like the full run, so the server and not the loader is what saturates) against a fresh
gateway three ways: recording off (bench/settings_no_inspector.py), recording on for a route that keeps no bodies,
and recording on for a route with `inspect.capture_bodies`. The three alternate round by round, so drift of the
machine falls on all of them. For each it records the throughput and the server's CPU time per request (see
bench/metrics_ab.py for why both). Prints the medians and the cost against "off", writes `inspector_ab.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from bench import run
from bench.common import raise_fd_limit, start_server
from bench.metrics_ab import cpu_seconds

BODY = json.dumps({"event": "bench", "padding": "x" * 990}).encode()
VARIANTS: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "off": ({"DJANGO_SETTINGS_MODULE": "bench.settings_no_inspector"}, {}),
    "records": ({}, {"inspect": {"capture_bodies": False}}),
    "bodies": ({}, {"inspect": {"capture_bodies": True}}),
}


def one_server(kind: str, variant: str, scale: float, deadline: float, loader: str = "python") -> dict[str, float]:
    env, fields = VARIANTS[variant]
    server = start_server(kind, extra_env=env)
    try:
        before = cpu_seconds(server.process.pid)
        result = run.ingress(
            server.url,
            requests=int(3000 * scale),
            rate=0,
            deadline=deadline,
            phases=("saturation",),
            route_fields=fields,
            body=BODY,
            loader=loader,
            seconds=max(3.0, 10.0 * scale),
        )
        saturation = result["saturation"]
        cpu = (cpu_seconds(server.process.pid) - before) * 1e6 / max(1, int(saturation["samples"]))
        return {
            "requests_per_s": saturation["requests_per_s"],
            "server_cpu_us": round(cpu, 1),
            "errors": saturation["errors"],
        }
    finally:
        server.stop()


def summary(runs: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    base_rate = statistics.median(r["requests_per_s"] for r in runs["off"])
    base_cpu = statistics.median(r["server_cpu_us"] for r in runs["off"])
    for variant, results in runs.items():
        rate = statistics.median(r["requests_per_s"] for r in results)
        cpu = statistics.median(r["server_cpu_us"] for r in results)
        out[variant] = {
            "requests_per_s": [r["requests_per_s"] for r in results],
            "server_cpu_us": [r["server_cpu_us"] for r in results],
            "median_requests_per_s": rate,
            "median_server_cpu_us": cpu,
            "throughput_cost_percent": round(100 * (base_rate - rate) / base_rate, 1) if base_rate else None,
            "cpu_cost_percent": round(100 * (cpu - base_cpu) / base_cpu, 1) if base_cpu else None,
        }
    return out


def table(result: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'recording':10}{'req/s (median)':>16}{'cost':>8}{'CPU us/req':>12}{'cost':>8}   runs (req/s)"]
    lines.append("-" * len(lines[0]))
    for variant, row in result.items():
        runs = " ".join(f"{v:g}" for v in row["requests_per_s"])
        lines.append(
            f"{variant:10}{row['median_requests_per_s']:>16.1f}{row['throughput_cost_percent']:>7.1f}%"
            f"{row['median_server_cpu_us']:>12.1f}{row['cpu_cost_percent']:>7.1f}%   {runs}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the load (a smoke run)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", default="daphne", choices=("daphne", "uvicorn"))
    parser.add_argument("--loader", default="auto", choices=("auto", "wrk", "python"))
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    loader = run.resolve_loader(args.loader)
    raise_fd_limit()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings")
    scale, deadline = (0.1, 60.0) if args.quick else (1.0, 120.0)
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    for round_number in range(1, args.rounds + 1):
        for variant in VARIANTS:
            print(f"== round {round_number}: {variant}", file=sys.stderr, flush=True)
            runs[variant].append(one_server(args.server, variant, scale, deadline, loader))
    result = summary(runs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "server": args.server,
        "loader": loader,
        "quick": args.quick,
        "rounds": args.rounds,
        "summary": result,
        "runs": runs,
    }
    (out / "inspector_ab.json").write_text(json.dumps(document, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
