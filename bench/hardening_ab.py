"""What the hardening costs: `python -m bench.hardening_ab [--quick] [--rounds 3] [--server daphne|uvicorn]
[--out bench/results]`.

Runs the three throughput scenarios of `bench.run` at saturation (client->agent, agent->client, webhook ingress)
against a fresh gateway as shipped ("all on"), and against one per hardening item switched off, everything else on:
the resource caps that count, the byte budgets, the JSON depth check, the rate limits, the metrics and the request
inspector (each a bench-only settings module, bench/settings_no_<item>.py; what each switch replaces is in
bench/switches.py). Every round runs every variant, in the opposite order to the round before, so that drift of the
machine falls on all of them. For each scenario it records the throughput and the server's CPU time per unit (see
bench/metrics_ab.py for why both), and prints per item the medians' cost of having it on (off -> on, in percent).
Writes `hardening_ab.json` to `--out`.

Before measuring, each variant is started once with tiny limits (bench.hardening_checks.PROBE_ENV) and probed from
outside: its own item must no longer act, every other item must. A variant that fails this stops the run: its figures
would not measure what they claim. (bench.common's server environment lifts the ingress rate limits out of the
measurement's way; with "all on" the limiter still counts every webhook, it just never refuses one.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from bench import hardening_checks
from bench.common import raise_fd_limit, start_server
from bench.metrics_ab import SCENARIOS, three_scenarios

ALL_ON = "all on"
ITEMS = tuple(hardening_checks.CHECKS_OF)  # caps, budgets, depth, ratelimits, metrics, inspector
VARIANTS = (ALL_ON, *ITEMS)


def variant_env(variant: str) -> dict[str, str]:
    return {} if variant == ALL_ON else {"DJANGO_SETTINGS_MODULE": f"bench.settings_no_{variant}"}


def checks(kind: str) -> dict[str, dict[str, Any]]:
    """Every variant probed once (bench.hardening_checks): what acted, and what is wrong with that."""
    out = {}
    for variant in VARIANTS:
        server = start_server(kind, extra_env={**hardening_checks.PROBE_ENV, **variant_env(variant)})
        try:
            acted = hardening_checks.check(server.url)
        finally:
            server.stop()
        out[variant] = {"acted": acted, "wrong": hardening_checks.verdict(variant, acted)}
    return out


def one_server(kind: str, variant: str, scale: float, deadline: float) -> dict[str, Any]:
    return three_scenarios(kind, variant_env(variant), scale, deadline)


def summary(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per item, per scenario: the medians off and on, and the cost of on (positive: on is worse)."""
    medians = {
        variant: {label: statistics.median(get(r) for r in runs[variant]) for label, get, _ in SCENARIOS}
        for variant in runs
    }
    out: dict[str, dict[str, Any]] = {}
    for item in ITEMS:
        rows = {}
        for label, get, higher_is_better in SCENARIOS:
            off, on = medians[item][label], medians[ALL_ON][label]
            worse = (off - on) if higher_is_better else (on - off)
            rows[label] = {
                "off": [get(r) for r in runs[item]],
                "on": [get(r) for r in runs[ALL_ON]],
                "median_off": off,
                "median_on": on,
                "cost_percent": round(100 * worse / off, 1) if off else None,
            }
        out[item] = rows
    return out


SHORT = ["c->a /s", "a->c /s", "ingress /s", "c->a CPU", "a->c CPU", "ingress CPU"]


def table(result: dict[str, dict[str, Any]], runs: dict[str, list[dict[str, Any]]]) -> str:
    lines = [f"{'cost of having it on (off -> on)':34}" + "".join(f"{s:>13}" for s in SHORT)]
    lines.append("-" * len(lines[0]))
    for item, rows in result.items():
        cells = [rows[label]["cost_percent"] for label, _, _ in SCENARIOS]
        lines.append(f"{item:34}" + "".join(f"{'n/a' if c is None else f'{c:+.1f}%':>13}" for c in cells))
    lines.append("")
    lines.append(f"{'medians (CPU: server us per unit)':34}" + "".join(f"{s:>13}" for s in SHORT))
    lines.append("-" * len(lines[0]))
    for variant, results in runs.items():
        name = variant if variant == ALL_ON else f"{variant} off"
        cells = [statistics.median(get(r) for r in results) for _, get, _ in SCENARIOS]
        lines.append(f"{name:34}" + "".join(f"{c:>13.1f}" for c in cells))
    lines.append("")
    lines.append("runs, per variant: " + "; ".join(label for label, _, _ in SCENARIOS))
    for variant, results in runs.items():
        values = " | ".join(" ".join(f"{get(r):g}" for r in results) for _, get, _ in SCENARIOS)
        lines.append(f"  {variant}: {values}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the load (a smoke run)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server", default="daphne", choices=("daphne", "uvicorn"))
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--scale", type=float, default=None, help="the load's scale (default 1, 0.1 with --quick)")
    args = parser.parse_args(argv)
    raise_fd_limit()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings")
    scale, deadline = (0.1, 60.0) if args.quick else (1.0, 120.0)
    scale = args.scale if args.scale is not None else scale
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print("== checking that each switch acts", file=sys.stderr, flush=True)
    checked = checks(args.server)
    document: dict[str, Any] = {"server": args.server, "quick": args.quick, "rounds": args.rounds, "scale": scale}
    document["checks"] = checked
    wrong = {variant: c["wrong"] for variant, c in checked.items() if c["wrong"]}
    if wrong:
        (out / "hardening_ab.json").write_text(json.dumps(document, indent=2))
        print(f"switches that do not do what they claim, nothing measured: {wrong}", file=sys.stderr)
        return 1
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    for round_number in range(1, args.rounds + 1):
        order = VARIANTS if round_number % 2 else tuple(reversed(VARIANTS))
        for variant in order:
            print(f"== round {round_number}: {variant}", file=sys.stderr, flush=True)
            runs[variant].append(one_server(args.server, variant, scale, deadline))
    result = summary(runs)
    document.update(summary=result, runs=runs)
    (out / "hardening_ab.json").write_text(json.dumps(document, indent=2))
    print(table(result, runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
