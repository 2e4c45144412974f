"""The scale-out benchmark: `python -m bench.scaleout [--quick] [--out bench/results/scaleout]`.

Runs the relay measurements of `bench.run` under Daphne (the production server) in three modes:

- `memory-1`: one process, STATE_BACKEND=memory (the default);
- `redis-1`: one process, STATE_BACKEND=redis (sessions, presence, limits in Redis; the channel layer on Redis);
- `redis-2`: two processes sharing Redis and a SQLite file, with every agent and tunnel on process A and every
  client (POSTs, SSE streams, webhooks) on process B, so each frame crosses processes.

For each: agent→client throughput (saturation) and p50/p99 at 1,000 frames/s, client→agent throughput and p50/p99 at
300/s, ingress throughput and p50/p99 at 300/s. agent→client at 1,000/s in `redis-2` is the cross-process latency.
Writes results.json, table.txt and a PNG chart. It starts its own redis-server (Debian's `redis-server`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import run
from bench.common import ROOT, SERVER_ENV, Server, free_port, start_server

MODES = ("memory-1", "redis-1", "redis-2")


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench.scaleout needs redis-server (apt-get install redis-server)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", workdir]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def redis_env(redis_url: str, database: Path, public: str) -> dict[str, str]:
    return {
        "STATE_BACKEND": "redis",
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{database}",
        "PUBLIC_BASE_URL": public,
    }


def migrate(env: dict[str, str]) -> None:
    full = {**os.environ, **SERVER_ENV, **env, "DJANGO_SETTINGS_MODULE": "gateway_site.settings"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"], cwd=ROOT, env=full, check=True, capture_output=True
    )


def measure(client_base: str, agent_base: str, scale: float, deadline: float, label: str) -> dict[str, Any]:
    def timed(name: str, action: Callable[[], Any]) -> Any:
        print(f"  {label}: {name} …", file=sys.stderr, flush=True)
        return action()

    a2c = {
        "saturation": timed(
            "agent->client saturation",
            lambda: run.a2c_saturation(client_base, False, scale=scale, deadline=deadline, agent_base=agent_base),
        ),
        "at_1000_per_s": timed(
            "agent->client 1000/s",
            lambda: run.agent_to_client(
                client_base,
                False,
                frames=int(5000 * scale),
                rate=1000,
                sessions=20,
                subscribers=1,
                deadline=deadline,
                agent_base=agent_base,
            ),
        ),
    }
    c2a = {
        "saturation": timed(
            "client->agent saturation",
            lambda: run.client_to_agent(
                client_base, False, frames=int(4000 * scale), rate=0, deadline=deadline, agent_base=agent_base
            ),
        ),
        "at_300_per_s": timed(
            "client->agent 300/s",
            lambda: run.client_to_agent(
                client_base, False, frames=int(1500 * scale), rate=300, deadline=deadline, agent_base=agent_base
            ),
        ),
    }
    hooks = timed(
        "ingress",
        lambda: run.ingress(
            client_base, requests=int(3000 * scale), rate=300, deadline=deadline, agent_base=agent_base
        ),
    )
    return {"agent_to_client": a2c, "client_to_agent": c2a, "ingress": hooks}


def run_mode(mode: str, scale: float, deadline: float) -> dict[str, Any]:
    if mode == "memory-1":
        os.environ.pop("BENCH_ISSUER", None)
        server = start_server("daphne")
        try:
            return {"mode": mode, **measure(server.url, server.url, scale, deadline, mode)}
        finally:
            server.stop()
    workdir = Path(tempfile.mkdtemp(prefix="bench-scaleout-"))
    servers: list[Server] = []
    try:
        with redis_server() as redis_url:
            public = f"http://127.0.0.1:{free_port()}"
            env = redis_env(redis_url, workdir / "gateway.sqlite3", public)
            migrate(env)
            os.environ["BENCH_ISSUER"] = public  # owner tokens name the shared issuer (bench.common.owner_token)
            count = 2 if mode == "redis-2" else 1
            for index in range(count):
                servers.append(start_server("daphne", extra_env={**env, "NODE_ID": f"bench-{index}"}))
            agent_base, client_base = servers[0].url, servers[-1].url
            return {"mode": mode, **measure(client_base, agent_base, scale, deadline, mode)}
    finally:
        for server in servers:
            server.stop()
        os.environ.pop("BENCH_ISSUER", None)
        shutil.rmtree(workdir, ignore_errors=True)


ROWS: list[tuple[str, Callable[[dict[str, Any]], float]]] = [
    ("agent->client saturation (frames/s)", lambda r: r["agent_to_client"]["saturation"]["deliveries_per_s"]),
    ("agent->client p50 at 1000/s (ms)", lambda r: r["agent_to_client"]["at_1000_per_s"]["p50_ms"]),
    ("agent->client p99 at 1000/s (ms)", lambda r: r["agent_to_client"]["at_1000_per_s"]["p99_ms"]),
    ("client->agent saturation (req/s)", lambda r: r["client_to_agent"]["saturation"]["frames_per_s"]),
    ("client->agent p50 at 300/s (ms)", lambda r: r["client_to_agent"]["at_300_per_s"]["p50_ms"]),
    ("client->agent p99 at 300/s (ms)", lambda r: r["client_to_agent"]["at_300_per_s"]["p99_ms"]),
    ("ingress saturation (req/s)", lambda r: r["ingress"]["saturation"]["requests_per_s"]),
    ("ingress p50 at 300/s (ms)", lambda r: r["ingress"]["fixed_rate"]["p50_ms"]),
    ("ingress p99 at 300/s (ms)", lambda r: r["ingress"]["fixed_rate"]["p99_ms"]),
    ("errors (all phases)", lambda r: errors(r)),
]


def errors(result: dict[str, Any]) -> float:
    total = 0
    for kind in ("agent_to_client", "client_to_agent", "ingress"):
        for phase in result[kind].values():
            total += int(phase.get("errors", 0) or 0)
    return total


def table(results: list[dict[str, Any]]) -> str:
    header = f"{'measurement':40}" + "".join(f"{r['mode']:>12}" for r in results)
    lines = [header, "-" * len(header)]
    for label, get in ROWS:
        lines.append(f"{label:40}" + "".join(f"{get(r):12.1f}" for r in results))
    memory = next((r for r in results if r["mode"] == "memory-1"), None)
    redis1 = next((r for r in results if r["mode"] == "redis-1"), None)
    if memory and redis1:
        ratio = ROWS[0][1](redis1) / max(1e-6, ROWS[0][1](memory))
        lines.append(f"redis-1 / memory-1 agent->client throughput: {ratio:.2f} (target >= 0.5)")
    redis2 = next((r for r in results if r["mode"] == "redis-2"), None)
    if redis2:
        p99 = ROWS[2][1](redis2)
        lines.append(f"cross-process p99 at 1000 frames/s: {p99:.1f} ms (target < 20)")
    return "\n".join(lines)


def chart(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["agent->client", "client->agent", "ingress"]
    getters = [ROWS[0][1], ROWS[3][1], ROWS[6][1]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(results)
    for index, result in enumerate(results):
        xs = [i + index * width for i in range(len(labels))]
        left.bar(xs, [get(result) for get in getters], width, label=result["mode"])
        right.bar(
            [i + index * width for i in range(3)],
            [ROWS[2][1](result), ROWS[5][1](result), ROWS[8][1](result)],
            width,
            label=result["mode"],
        )
    left.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels)
    left.set_ylabel("per second (saturation)")
    left.set_title("throughput")
    right.set_xticks([i + 0.4 - width / 2 for i in range(3)], ["a->c @1000/s", "c->a @300/s", "ingress @300/s"])
    right.set_ylabel("p99 ms")
    right.set_title("tail latency")
    left.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the load (a smoke run)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "scaleout"))
    args = parser.parse_args(argv)
    scale, deadline = (0.1, 60.0) if args.quick else (1.0, 120.0)
    modes = [m for m in args.modes.split(",") if m]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes: {', '.join(sorted(unknown))}")
    results = []
    for mode in modes:
        print(f"== {mode}", file=sys.stderr, flush=True)
        results.append(run_mode(mode, scale, deadline))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    text = table(results)
    (out / "table.txt").write_text(text + "\n")
    chart(results, out / "throughput.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
