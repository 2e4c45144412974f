"""The benchmark's report: the targets (per server where the issue sets them per server), the table and the chart."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

Getter = Callable[[dict[str, Any]], float]
Threshold = float | dict[str, float]  # one figure for every server, or one per server

TARGETS: list[tuple[str, Getter, str, Threshold]] = [
    (
        "agent->client saturation (frames/s)",
        lambda r: r["agent_to_client"]["saturation"]["deliveries_per_s"],
        ">=",
        2000,
    ),
    ("agent->client p99 at 1000/s (ms)", lambda r: r["agent_to_client"]["at_1000_per_s"]["p99_ms"], "<=", 100),
    ("client->agent saturation (req/s)", lambda r: r["client_to_agent"]["saturation"]["frames_per_s"], ">=", 500),
    ("client->agent p99 at 300/s (ms)", lambda r: r["client_to_agent"]["at_300_per_s"]["p99_ms"], "<=", 100),
    ("ingress saturation (req/s)", lambda r: r["ingress"]["saturation"]["requests_per_s"], ">=", 300),
    ("ingress p99 at 300/s (ms)", lambda r: r["ingress"]["fixed_rate"]["p99_ms"], "<=", 150),
    ("idle sockets memory (MiB for 5000)", lambda r: r["idle"]["kib_per_socket"] * 5000 / 1024, "<=", 500),
    ("reconnect storm errors", lambda r: r["reconnect_storm"]["errors"], "<=", 0),
    # Issue 19 (Performance II).
    ("ratio agent->client to baseline", lambda r: r["ratio_to_baseline"]["agent_to_client"], ">=", 0.35),
    ("ratio client->agent to baseline", lambda r: r["ratio_to_baseline"]["client_to_agent"], ">=", 0.90),
    ("fan-out 1x10 p99 at 1000/s (ms)", lambda r: r["fan_out_at_1000_per_s"]["p99_ms"], "<=", 100),
    (
        "fan-out 1x10 saturation (deliveries/s)",
        lambda r: r["fan_out"]["deliveries_per_s"],
        ">=",
        {"daphne": 22826, "uvicorn": 45212},  # twice the 2026-11-28 figures
    ),
    (
        "ingress saturation, issue 19 (req/s)",
        lambda r: r["ingress"]["saturation"]["requests_per_s"],
        ">=",
        {"daphne": 600, "uvicorn": 800},
    ),
    (
        "idle sockets memory (MiB for 10000)",
        lambda r: r["idle"]["kib_per_socket"] * 10000 / 1024,
        "<=",
        {"daphne": 400, "uvicorn": 600},
    ),
]

FIGURES: list[tuple[str, Getter]] = [
    ("agent->client p50 at 1000/s (ms)", lambda r: r["agent_to_client"]["at_1000_per_s"]["p50_ms"]),
    ("client->agent p50 at 300/s (ms)", lambda r: r["client_to_agent"]["at_300_per_s"]["p50_ms"]),
    ("client->agent p99 at saturation (ms)", lambda r: r["client_to_agent"]["saturation"]["p99_ms"]),
    ("ingress p99 at saturation (ms)", lambda r: r["ingress"]["saturation"]["p99_ms"]),
    ("fan-out p99 at saturation (ms)", lambda r: r["fan_out"]["p99_ms"]),
    ("fan-out p50 at 1000/s (ms)", lambda r: r["fan_out_at_1000_per_s"]["p50_ms"]),
    ("idle sockets connected", lambda r: r["idle"]["sockets"]),
    ("idle KiB per socket", lambda r: r["idle"]["kib_per_socket"]),
    ("idle: server RSS with the sockets (MiB)", lambda r: r["idle"]["rss_after_mib"]),
    ("storm agents", lambda r: r["reconnect_storm"]["agents"]),
    ("storm: seconds until presence right", lambda r: r["reconnect_storm"]["seconds_until_presence_right"] or -1),
    ("baseline client->agent (frames/s)", lambda r: r["baseline"]["client_to_agent"]["frames_per_s"]),
    ("baseline agent->client (frames/s)", lambda r: r["baseline"]["agent_to_client"]["deliveries_per_s"]),
    ("loader ceiling: wrk on /b/ping (req/s)", lambda r: r["loader_ceiling"]["requests_per_s"]),
]


def value(get: Getter, result: dict[str, Any]) -> float:
    """The figure, or NaN when this run did not measure it (no baseline in --compare, no wrk, ...)."""
    try:
        return float(get(result))
    except (KeyError, TypeError):
        return math.nan


def threshold(target: Threshold, server: str) -> float | None:
    if isinstance(target, dict):
        return target.get(server)
    return float(target)


def met(op: str, figure: float, limit: float) -> bool:
    return figure >= limit if op == ">=" else figure <= limit


def fmt(figure: float) -> str:
    if math.isnan(figure):
        return "-"
    return f"{figure:.2f}" if abs(figure) < 10 else f"{figure:.1f}"


def _target_text(op: str, target: Threshold, servers: list[str]) -> str:
    if not isinstance(target, dict):
        return f"{op} {target:g}"
    return ", ".join(f"{s} {op} {target[s]:g}" for s in servers if s in target)


def table(all_results: list[dict[str, Any]]) -> str:
    servers = [r["server"] for r in all_results]
    header = f"{'measurement':44}" + "".join(f"{s:>14}" for s in servers) + "   target"
    lines = [header, "-" * len(header)]
    for label, get, op, target in TARGETS:
        row = f"{label:44}"
        for result in all_results:
            figure = value(get, result)
            limit = threshold(target, result["server"])
            mark = " " if limit is None or math.isnan(figure) else ("✓" if met(op, figure, limit) else "✗")
            row += f"{fmt(figure):>12} {mark}"
        lines.append(row + f"   {_target_text(op, target, servers)}")
    for label, get in FIGURES:
        lines.append(f"{label:44}" + "".join(f"{fmt(value(get, r)):>14}" for r in all_results))
    loaders = {r.get("loader", "python") for r in all_results}
    lines.append(f"saturation loader: {', '.join(sorted(loaders))} (fixed-rate phases: the Python workers)")
    return "\n".join(lines)


def figures(result: dict[str, Any]) -> dict[str, float]:
    """Every figure of one run by label (targets first), for `--compare`."""
    rows = [(label, get) for label, get, _, _ in TARGETS] + FIGURES
    return {label: value(get, result) for label, get in rows}


def chart(all_results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["client->agent", "agent->client", "fan-out 1x10", "ingress", "baseline c->a", "baseline a->c"]
    getters: list[Getter] = [
        lambda r: r["client_to_agent"]["saturation"]["frames_per_s"],
        lambda r: r["agent_to_client"]["saturation"]["deliveries_per_s"],
        lambda r: r["fan_out"]["deliveries_per_s"],
        lambda r: r["ingress"]["saturation"]["requests_per_s"],
        lambda r: r["baseline"]["client_to_agent"]["frames_per_s"],
        lambda r: r["baseline"]["agent_to_client"]["deliveries_per_s"],
    ]
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.8 / max(1, len(all_results))
    for i, result in enumerate(all_results):
        xs = [x + i * width for x in range(len(labels))]
        ax.bar(
            xs,
            [0 if math.isnan(v) else v for v in (value(get, result) for get in getters)],
            width,
            label=result["server"],
        )
    ax.set_xticks([x + width * (len(all_results) - 1) / 2 for x in range(len(labels))], labels)
    ax.set_yscale("log")  # the baseline is an order of magnitude above the rest
    ax.set_ylabel("per second at saturation (log scale)")
    ax.set_title("Gateway throughput, one process, 2 cores")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
