"""The gateway's share of the bare relay, over several rounds: `python -m bench.ratio_rounds [--server daphne]
[--scenario a2c|c2a] [--rounds 5] [--quick] [--out bench/results]`.

One full run (`bench.run`) measures the baseline relay and the gateway once each, minutes apart; on a shared 2-core
VM the machine's speed can move by 2x between the two (docs/performance.md "How far one run can be trusted"). This
measures only one ratio, but alternates fresh servers of both apps round by round (baseline, gateway, baseline, ...),
so drift falls on both sides, and reports the ratio of each round and their median. Agent -> client runs the full
run's saturation phase (20 sessions, one reader each, Python agents and readers); client -> agent runs wrk when it is
installed. Writes `ratio_rounds_<server>_<scenario>.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench import run
from bench.common import raise_fd_limit, start_server


def one(kind: str, app: str, scenario: str, scale: float, deadline: float, loader: str) -> float:
    """Frames per second of one fresh server of `app` ("gateway" or "baseline")."""
    baseline = app == "baseline"
    server = start_server(kind, app=app)
    try:
        if scenario == "a2c":
            return float(run.a2c_saturation(server.url, baseline, scale=scale, deadline=deadline)["deliveries_per_s"])
        if loader == "wrk":
            result = run.client_to_agent_wrk(server.url, baseline, seconds=10.0 * scale, deadline=deadline)
        else:
            result = run.client_to_agent(server.url, baseline, frames=int(4000 * scale), rate=0, deadline=deadline)
        return float(result["frames_per_s"])
    finally:
        server.stop()


def summary(rounds: list[dict[str, float]]) -> dict[str, Any]:
    ratios = [r["gateway"] / r["baseline"] for r in rounds if r["baseline"]]
    return {
        "rounds": rounds,
        "ratios_percent": [round(100 * ratio, 1) for ratio in ratios],
        "median_ratio_percent": round(100 * statistics.median(ratios), 1) if ratios else None,
        "median_gateway": statistics.median(r["gateway"] for r in rounds),
        "median_baseline": statistics.median(r["baseline"] for r in rounds),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", default="daphne", choices=("daphne", "uvicorn"))
    parser.add_argument("--scenario", default="a2c", choices=("a2c", "c2a"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a tenth of the load (a smoke run)")
    parser.add_argument("--loader", default="auto", choices=("auto", "wrk", "python"))
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    raise_fd_limit()
    loader = run.resolve_loader(args.loader)
    scale, deadline = (0.1, 60.0) if args.quick else (1.0, 120.0)
    rounds: list[dict[str, float]] = []
    for number in range(1, args.rounds + 1):
        measured: dict[str, float] = {}
        for app in ("baseline", "gateway") if number % 2 else ("gateway", "baseline"):
            print(f"== round {number}: {app}", file=sys.stderr, flush=True)
            measured[app] = one(args.server, app, args.scenario, scale, deadline, loader)
        rounds.append(measured)
        print(f"   {measured['gateway']:.0f} / {measured['baseline']:.0f}", file=sys.stderr, flush=True)
    result = {"server": args.server, "scenario": args.scenario, "loader": loader, "quick": args.quick}
    result.update(summary(rounds))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"ratio_rounds_{args.server}_{args.scenario}.json").write_text(json.dumps(result, indent=2))
    print(
        f"{args.scenario} under {args.server}: gateway / baseline per round {result['ratios_percent']} %, "
        f"median {result['median_ratio_percent']}% (gateway {result['median_gateway']:.0f}, "
        f"baseline {result['median_baseline']:.0f} frames/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
