"""What the metrics cost: `python -m bench.metrics_ab [--quick] [--rounds 3] [--server daphne] [--out bench/results]`.

Runs the three throughput scenarios of `bench.run` at saturation (client->agent, agent->client, webhook ingress)
against a fresh gateway with METRICS_ENABLED=false, then against one with METRICS_ENABLED=true, and repeats the pair
`--rounds` times (off, on, off, on, ...), so that drift of the machine falls on both sides. Prints the medians and the
cost of counting (the drop from off to on, in percent), and writes `metrics_ab.json` to `--out`.
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

SCENARIOS: dict[str, run.Getter] = {
    "client_to_agent (frames/s)": lambda r: r["client_to_agent"]["frames_per_s"],
    "agent_to_client (frames/s)": lambda r: r["agent_to_client"]["deliveries_per_s"],
    "ingress (requests/s)": lambda r: r["ingress"]["saturation"]["requests_per_s"],
}


def one_server(kind: str, metrics_on: bool, scale: float, deadline: float) -> dict[str, Any]:
    server = start_server(kind, extra_env={"METRICS_ENABLED": "true" if metrics_on else "false"})
    try:
        base = server.url
        return {
            "client_to_agent": run.client_to_agent(base, False, frames=int(4000 * scale), rate=0, deadline=deadline),
            "agent_to_client": run.agent_to_client(
                base, False, frames=int(10000 * scale), rate=0, sessions=20, subscribers=1, deadline=deadline
            ),
            "ingress": run.ingress(base, requests=int(3000 * scale), rate=0, deadline=deadline, phases=("saturation",)),
        }
    finally:
        server.stop()


def summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out = {}
    for label, get in SCENARIOS.items():
        off = [get(r) for r in runs["off"]]
        on = [get(r) for r in runs["on"]]
        median_off, median_on = statistics.median(off), statistics.median(on)
        out[label] = {
            "off": off,
            "on": on,
            "median_off": median_off,
            "median_on": median_on,
            "cost_percent": round(100 * (median_off - median_on) / median_off, 1) if median_off else None,
        }
    return out


def table(result: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'scenario (saturation)':30}{'off (median)':>14}{'on (median)':>14}{'cost':>9}   runs off / on"]
    lines.append("-" * len(lines[0]))
    for label, row in result.items():
        runs = f"{' '.join(f'{v:.0f}' for v in row['off'])} / {' '.join(f'{v:.0f}' for v in row['on'])}"
        lines.append(
            f"{label:30}{row['median_off']:>14.1f}{row['median_on']:>14.1f}{row['cost_percent']:>8.1f}%   {runs}"
        )
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
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    document = {"server": args.server, "quick": args.quick, "rounds": args.rounds, "summary": result, "runs": runs}
    (out / "metrics_ab.json").write_text(json.dumps(document, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
