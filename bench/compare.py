"""`python -m bench.run --compare REV`: the same measurements against git revision REV's gateway and this tree's.

REV's tree comes from `git archive` (unpacked with tarfile into a temporary directory) and runs with this checkout's
virtualenv and load generators. Under each server, REV runs first, then the current tree; the report is the ratio
current / REV of every figure. Writes compare.json and compare.txt.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from bench.common import ROOT
from bench.report import figures, fmt


def export_tree(rev: str, into: Path) -> str:
    """Unpacks REV's tracked files into `into`; returns the full commit id."""
    git = shutil.which("git") or "/usr/bin/git"
    commit = subprocess.run(
        [git, "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run([git, "archive", "--format=tar", commit], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return commit


def ratio_table(rev: str, runs: dict[str, dict[str, dict[str, Any]]]) -> str:
    servers = list(runs)
    header = f"{'measurement':44}" + "".join(
        f"{s + ' ' + col:>18}" for s in servers for col in ("rev", "now", "now/rev")
    )
    lines = [f"current tree against {rev}", header, "-" * len(header)]
    by_server = {s: (figures(runs[s]["rev"]), figures(runs[s]["current"])) for s in servers}
    for label in by_server[servers[0]][0]:
        row = f"{label:44}"
        for server in servers:
            old, new = by_server[server][0][label], by_server[server][1][label]
            row += f"{fmt(old):>18}{fmt(new):>18}{fmt(_ratio(new, old)):>18}"
        lines.append(row)
    return "\n".join(lines)


def _ratio(new: float, old: float) -> float:
    if math.isnan(new) or math.isnan(old) or old == 0:
        return math.nan
    return new / old


def run_compare(rev: str, servers: list[str], quick: bool, env: dict[str, str], loader: str, out: Path) -> str:
    from bench.run import run_server

    runs: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-rev-") as tmp:
        tree = Path(tmp)
        commit = export_tree(rev, tree)
        for kind in servers:
            print(f"== {kind}: {rev} ({commit[:12]})", file=sys.stderr, flush=True)
            old = run_server(kind, quick, env, loader=loader, source=tree, with_baseline=False)
            print(f"== {kind}: current tree", file=sys.stderr, flush=True)
            new = run_server(kind, quick, env, loader=loader, with_baseline=False)
            runs[kind] = {"rev": old, "current": new}
    text = ratio_table(f"{rev} ({commit[:12]})", runs)
    ratios = {
        kind: {
            label: _ratio(new, figures(runs[kind]["rev"])[label])
            for label, new in figures(runs[kind]["current"]).items()
        }
        for kind in servers
    }
    payload = {"rev": rev, "commit": commit, "quick": quick, "runs": runs, "ratios": _json_safe(ratios)}
    (out / "compare.json").write_text(json.dumps(payload, indent=2))
    (out / "compare.txt").write_text(text + "\n")
    return text


def _json_safe(ratios: dict[str, dict[str, float]]) -> dict[str, dict[str, float | None]]:
    return {k: {label: None if math.isnan(v) else round(v, 3) for label, v in row.items()} for k, row in ratios.items()}
