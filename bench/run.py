"""The benchmark: `python -m bench.run [--quick] [--servers daphne,uvicorn] [--metrics on|off] [--out bench/results]`.

Starts the gateway as in production (demo mode, one server process) under each ASGI server, drives it from separate
load-generator processes on loopback, prints a table, writes the numbers as JSON and draws one PNG chart.
Every phase is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench import workers
from bench.common import Identity, latency_summary, owner_token, raise_fd_limit, register_device, start_server

CTX = multiprocessing.get_context("spawn")


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    return [chunk for chunk in (items[i::parts] for i in range(parts)) if chunk]


def _collect(process: Any, queue: Any, timeout: float) -> dict[str, Any]:
    result = queue.get(timeout=timeout)
    process.join(timeout=10)
    return dict(result)


class Relay:
    """One device, its agent process and N acknowledged sessions, on the gateway or on the baseline app."""

    def __init__(
        self, base: str, baseline: bool, sessions: int, deadline: float, agent_base: str | None = None
    ) -> None:
        self.base, self.baseline, self.deadline = base, baseline, deadline
        self.agent_base = agent_base or base  # the process the agent connects to (bench.scaleout: another one)
        self.session_ids = [f"sess_{secrets.token_hex(8)}" for _ in range(sessions)]
        self.token = ""
        self.identity = Identity.new()
        if not baseline:
            self.token = owner_token(base, f"bench-{secrets.token_hex(4)}")
            self.device_id = f"dev_{secrets.token_hex(16)}"
            with httpx.Client(base_url=base, timeout=30) as http:
                register_device(http, self.token, self.device_id, self.identity)

    @property
    def paths(self) -> dict[str, str]:
        if self.baseline:
            return {
                "agent_path": "/b/agent",
                "message_path": "/b/sessions/{sid}/messages",
                "events_path": "/b/sessions/{sid}/events",
            }
        return {
            "agent_path": f"/gateway/v1/agent/connect?device_id={self.device_id}",
            "message_path": "/gateway/v1/sessions/{sid}/messages",
            "events_path": "/gateway/v1/sessions/{sid}/events",
        }

    def start_agent(self, **extra: Any) -> tuple[Any, Any, Any, Any, Any]:
        from cryptography.hazmat.primitives import serialization

        raw = self.identity.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        cfg = {
            "base": self.agent_base,
            "token": self.token,
            "identity": raw,
            "baseline": self.baseline,
            "deadline": self.deadline,
            "sessions": self.session_ids,
            **self.paths,
            **extra,
        }
        ready, go, done, queue = CTX.Event(), CTX.Event(), CTX.Event(), CTX.Queue()
        process = CTX.Process(target=workers.agent, args=(cfg, ready, go, done, queue))
        process.start()
        assert ready.wait(30), "agent did not connect"
        if not self.baseline:
            self._handshake()
        return process, go, done, queue, ready

    def _handshake(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.base, timeout=30) as http:
            for sid in self.session_ids:
                body = {
                    "device_id": self.device_id,
                    "handshake_id": f"hs_{sid}",
                    "client_session_nonce": "bm9uY2U=",
                    "client_ephemeral_public_key": "zY++EJfS+1RqnBvK+5wAOKlyQqMxyvlENYEvCqkqdBU=",
                }
                http.post(
                    f"/gateway/v1/sessions/{sid}/handshake/client-init", json=body, headers=headers
                ).raise_for_status()
            deadline = time.monotonic() + 30
            for sid in self.session_ids:
                while (
                    http.get(f"/gateway/v1/sessions/{sid}/handshake/hs_{sid}", headers=headers).json()["status"]
                    != "agent_acknowledged"
                ):
                    assert time.monotonic() < deadline, "handshakes did not complete"
                    time.sleep(0.02)


def client_to_agent(
    base: str, baseline: bool, *, frames: int, rate: int, deadline: float, agent_base: str | None = None
) -> dict[str, Any]:
    """Measurement 1: frames POSTed to /messages and received on the agent socket."""
    relay = Relay(base, baseline, sessions=16, deadline=deadline, agent_base=agent_base)
    agent, _, done, agent_out, _ = relay.start_agent(expect=frames)
    per_session = max(1, frames // len(relay.session_ids))
    started = time.time()
    posters = []
    for chunk in _split(relay.session_ids, 2):
        queue = CTX.Queue()
        cfg = {
            "base": base,
            "token": relay.token,
            "sessions": chunk,
            "per_session": per_session,
            "rate": rate * len(chunk) / len(relay.session_ids) if rate else 0,
            "deadline": deadline,
            "message_path": relay.paths["message_path"],
        }
        process = CTX.Process(target=workers.poster, args=(cfg, queue))
        process.start()
        posters.append((process, queue))
    posted = [_collect(p, q, deadline + 30) for p, q in posters]
    done.set()
    received = _collect(agent, agent_out, deadline + 30)
    elapsed = max(1e-6, (received["last"] or time.time()) - started)
    return {
        "frames_per_s": round(received["received"] / elapsed, 1),
        "received": received["received"],
        "errors": sum(p["errors"] for p in posted),
        **latency_summary(received["latencies"]),
    }


def agent_to_client(
    base: str,
    baseline: bool,
    *,
    frames: int,
    rate: int,
    sessions: int,
    subscribers: int,
    deadline: float,
    agent_base: str | None = None,
) -> dict[str, Any]:
    """Measurement 2 (and 3 with one session and many subscribers): agent frames received over SSE."""
    relay = Relay(base, baseline, sessions=sessions, deadline=deadline, agent_base=agent_base)
    agent, go, done, agent_out, _ = relay.start_agent(send_total=frames, rate=rate)
    streams = [sid for sid in relay.session_ids for _ in range(subscribers)]
    expected_total = frames * subscribers
    readers = []
    for chunk in _split(streams, 2):
        ready, queue = CTX.Event(), CTX.Queue()
        share = round(expected_total * len(chunk) / len(streams))
        cfg = {
            "base": base,
            "token": relay.token,
            "streams": chunk,
            "deadline": deadline,
            "expect": share,
            "events_path": relay.paths["events_path"],
        }
        process = CTX.Process(target=workers.reader, args=(cfg, ready, done, queue))
        process.start()
        assert ready.wait(60), "streams did not open"
        readers.append((process, queue))
    started = time.time()
    go.set()
    results = [_collect(p, q, deadline + 30) for p, q in readers]
    last_delivery = max((r["last"] for r in results), default=0.0) or time.time()
    elapsed = max(1e-6, last_delivery - started)
    done.set()
    _collect(agent, agent_out, deadline + 30)
    latencies = [v for r in results for v in r["latencies"]]
    delivered = sum(r["received"] for r in results)
    return {
        "deliveries_per_s": round(delivered / elapsed, 1),
        "delivered": delivered,
        "expected": expected_total,
        **latency_summary(latencies),
    }


def idle_and_storm(
    server: Any, *, sockets: int, storm: int, deadline: float, storm_window: float = 10.0
) -> dict[str, Any]:
    """Measurements 4 and 5: idle agent sockets with heartbeats (memory), then a reconnect storm."""
    base = server.url
    per_owner = 50  # the per-owner socket cap
    owners = [owner_token(base, f"idle-{secrets.token_hex(4)}") for _ in range((sockets + per_owner - 1) // per_owner)]
    devices: list[tuple[str, str]] = []
    with httpx.Client(base_url=base, timeout=60) as http:
        for n in range(sockets):
            token = owners[n // per_owner]
            device_id = f"dev_idle_{n:05d}_{secrets.token_hex(4)}"
            register_device(http, token, device_id, Identity.new())
            devices.append((device_id, token))
    rss_before = server.rss_kib()
    storm_devices = {d for d, _ in devices[:storm]}
    workers_list = []
    go, done = CTX.Event(), CTX.Event()
    for chunk in _split(devices, 4):
        ready, queue = CTX.Event(), CTX.Queue()
        chunk_storm = [d for d in chunk if d[0] in storm_devices]
        cfg = {"base": base, "devices": chunk, "deadline": deadline, "heartbeat": 15.0}
        process = CTX.Process(target=workers.sockets, args=(cfg, ready, go, done, queue))
        process.start()
        workers_list.append((process, queue, ready, chunk_storm))
    for _, _, ready, _ in workers_list:
        assert ready.wait(deadline), "sockets did not connect"
    time.sleep(1.0)
    rss_after = server.rss_kib()
    done.set()
    results = [_collect(p, q, deadline + 30) for p, q, _, _ in workers_list]
    connected = sum(r["connected"] for r in results)
    idle = {
        "sockets": connected,
        "connect_errors": sum(r["connect_errors"] for r in results),
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_after_mib": round(rss_after / 1024, 1),
        "kib_per_socket": round((rss_after - rss_before) / max(1, connected), 1),
    }
    time.sleep(2)
    return {"idle": idle, "storm": _storm(base, devices[:storm], deadline, storm_window)}


def _storm(base: str, devices: list[tuple[str, str]], deadline: float, window: float) -> dict[str, Any]:
    go, done = CTX.Event(), CTX.Event()
    procs = []
    for chunk in _split(devices, 4):
        ready, queue = CTX.Event(), CTX.Queue()
        cfg = {"base": base, "devices": chunk, "deadline": deadline, "storm": True, "storm_window": window}
        process = CTX.Process(target=workers.sockets, args=(cfg, ready, go, done, queue))
        process.start()
        procs.append((process, queue, ready))
    for _, _, ready in procs:
        assert ready.wait(deadline), "storm sockets did not connect"
    owners = sorted({token for _, token in devices})
    started = time.time()
    go.set()
    # Presence is right when every device lists as online for its owner again, after every socket was replaced.
    time.sleep(window + 0.5)
    presence_ok_at = None
    with httpx.Client(base_url=base, timeout=30) as http:
        limit = time.monotonic() + 30
        while time.monotonic() < limit:
            online = sum(
                1
                for token in owners
                for d in http.get("/gateway/v1/devices", headers={"Authorization": f"Bearer {token}"}).json()["devices"]
                if d["status"] == "online"
            )
            if online >= len(devices):
                presence_ok_at = time.time()
                break
            time.sleep(0.2)
    done.set()
    results = [_collect(p, q, deadline + 30) for p, q, _ in procs]
    return {
        "agents": len(devices),
        "errors": sum(r.get("errors", 0) for r in results) + sum(r["connect_errors"] for r in results),
        "error_samples": [s for r in results for s in r.get("error_samples", [])][:3],
        "seconds_until_presence_right": round(presence_ok_at - started, 2) if presence_ok_at else None,
    }


def ingress(
    base: str,
    *,
    requests: int,
    rate: int,
    deadline: float,
    agent_base: str | None = None,
    phases: tuple[str, ...] = ("saturation", "fixed_rate"),
    route_fields: dict[str, Any] | None = None,
    body: bytes | None = None,
) -> dict[str, Any]:
    """Measurement 6: webhooks through a tunnel with an echoing tunnel client (connected to `agent_base`); the route
    is created with `route_fields` on top, and the senders post `body` (a small JSON event by default)."""
    token = owner_token(base, f"hooks-{secrets.token_hex(4)}")
    device_id = f"dev_{secrets.token_hex(16)}"
    with httpx.Client(base_url=base, timeout=30) as http:
        created = http.post(
            "/gateway/v1/integrations/routes",
            json={"device_id": device_id, "interface_type": "http", **(route_fields or {})},
            headers={"Authorization": f"Bearer {token}"},
        ).json()
    route_id = created["route"]["route_id"]
    path = f"/integrations/{route_id}/{created['route_token']}"
    ready, done, queue = CTX.Event(), CTX.Event(), CTX.Queue()
    tunnel = CTX.Process(
        target=workers.tunnel,
        args=(
            {
                "base": agent_base or base,
                "token": token,
                "device_id": device_id,
                "route_id": route_id,
                "deadline": deadline,
            },
            ready,
            done,
            queue,
        ),
    )
    tunnel.start()
    assert ready.wait(30), "tunnel did not activate"
    results = {}
    for label, cfg in (
        ("saturation", {"concurrency": 32, "total": requests, "rate": 0}),
        ("fixed_rate", {"concurrency": 16, "total": max(1, rate * 5), "rate": rate}),
    ):
        if label not in phases:
            continue
        out = CTX.Queue()
        process = CTX.Process(
            target=workers.webhooks,
            args=({"base": base, "path": path, "deadline": deadline, **cfg, **({"body": body} if body else {})}, out),
        )
        process.start()
        result = _collect(process, out, deadline + 30)
        results[label] = {
            "requests_per_s": round(result["ok"] / max(1e-6, result["seconds"]), 1),
            "errors": result["errors"],
            "error_statuses": result["statuses"],
            **latency_summary(result["latencies"]),
        }
    done.set()
    _collect(tunnel, queue, deadline + 30)
    return results


def run_server(kind: str, quick: bool, server_env: dict[str, str] | None = None) -> dict[str, Any]:
    scale = 0.1 if quick else 1.0
    deadline = 60.0 if quick else 120.0
    results: dict[str, Any] = {"server": kind}

    def timed(label: str, action: Callable[[], Any]) -> Any:
        print(f"  {kind}: {label} …", file=sys.stderr, flush=True)
        return action()

    server = start_server(kind, extra_env=server_env)
    try:
        base = server.url
        results["client_to_agent"] = {
            "saturation": timed(
                "client->agent saturation",
                lambda: client_to_agent(base, False, frames=int(4000 * scale), rate=0, deadline=deadline),
            ),
            "at_300_per_s": timed(
                "client->agent 300/s",
                lambda: client_to_agent(base, False, frames=int(1500 * scale), rate=300, deadline=deadline),
            ),
        }
        results["agent_to_client"] = {
            "saturation": timed(
                "agent->client saturation",
                lambda: agent_to_client(
                    base, False, frames=int(10000 * scale), rate=0, sessions=20, subscribers=1, deadline=deadline
                ),
            ),
            "at_1000_per_s": timed(
                "agent->client 1000/s",
                lambda: agent_to_client(
                    base, False, frames=int(5000 * scale), rate=1000, sessions=20, subscribers=1, deadline=deadline
                ),
            ),
        }
        results["fan_out"] = timed(
            "fan-out",
            lambda: agent_to_client(
                base, False, frames=int(2000 * scale), rate=0, sessions=1, subscribers=10, deadline=deadline
            ),
        )
        results["ingress"] = timed(
            "ingress", lambda: ingress(base, requests=int(3000 * scale), rate=300, deadline=deadline)
        )
        both = timed(
            "idle sockets and reconnect storm",
            lambda: idle_and_storm(server, sockets=int(5000 * scale), storm=int(1000 * scale), deadline=deadline * 2),
        )
        results["idle"] = both["idle"]
        results["reconnect_storm"] = both["storm"]
    finally:
        server.stop()
    baseline = start_server(kind, app="baseline")
    try:
        base = baseline.url
        results["baseline"] = {
            "client_to_agent": timed(
                "baseline client->agent",
                lambda: client_to_agent(base, True, frames=int(4000 * scale), rate=0, deadline=deadline),
            ),
            "agent_to_client": timed(
                "baseline agent->client",
                lambda: agent_to_client(
                    base, True, frames=int(10000 * scale), rate=0, sessions=20, subscribers=1, deadline=deadline
                ),
            ),
        }
    finally:
        baseline.stop()
    base_c2a = results["baseline"]["client_to_agent"]["frames_per_s"] or 1
    base_a2c = results["baseline"]["agent_to_client"]["deliveries_per_s"] or 1
    results["ratio_to_baseline"] = {
        "client_to_agent": round(results["client_to_agent"]["saturation"]["frames_per_s"] / base_c2a, 2),
        "agent_to_client": round(results["agent_to_client"]["saturation"]["deliveries_per_s"] / base_a2c, 2),
    }
    return results


Getter = Callable[[dict[str, Any]], float]
TARGETS: list[tuple[str, Getter, str, float]] = [
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
]


def table(all_results: list[dict[str, Any]]) -> str:
    lines = []
    header = f"{'measurement':44}" + "".join(f"{r['server']:>14}" for r in all_results) + "   target"
    lines.append(header)
    lines.append("-" * len(header))
    for label, get, op, target in TARGETS:
        row = f"{label:44}"
        for result in all_results:
            value = get(result)
            ok = value >= target if op == ">=" else value <= target
            row += f"{value:>12.1f} {'✓' if ok else '✗'}"
        lines.append(row + f"   {op} {target}")
    for label, get in (
        ("agent->client p50 at 1000/s (ms)", lambda r: r["agent_to_client"]["at_1000_per_s"]["p50_ms"]),
        ("client->agent p50 at 300/s (ms)", lambda r: r["client_to_agent"]["at_300_per_s"]["p50_ms"]),
        ("fan-out 1x10 deliveries/s", lambda r: r["fan_out"]["deliveries_per_s"]),
        ("fan-out p99 (ms)", lambda r: r["fan_out"]["p99_ms"]),
        ("idle KiB per socket", lambda r: r["idle"]["kib_per_socket"]),
        ("storm: seconds until presence right", lambda r: r["reconnect_storm"]["seconds_until_presence_right"] or -1),
        ("baseline client->agent (frames/s)", lambda r: r["baseline"]["client_to_agent"]["frames_per_s"]),
        ("baseline agent->client (frames/s)", lambda r: r["baseline"]["agent_to_client"]["deliveries_per_s"]),
        ("ratio client->agent to baseline", lambda r: r["ratio_to_baseline"]["client_to_agent"]),
        ("ratio agent->client to baseline", lambda r: r["ratio_to_baseline"]["agent_to_client"]),
    ):
        lines.append(f"{label:44}" + "".join(f"{get(r):>14.2f}" for r in all_results))
    return "\n".join(lines)


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
        ax.bar(xs, [get(result) for get in getters], width, label=result["server"])
    ax.set_xticks([x + width * (len(all_results) - 1) / 2 for x in range(len(labels))], labels)
    ax.set_yscale("log")  # the baseline is an order of magnitude above the rest
    ax.set_ylabel("per second at saturation (log scale)")
    ax.set_title("Gateway throughput, one process, 2 cores")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the load (a smoke run)")
    parser.add_argument("--servers", default="daphne,uvicorn")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument(
        "--metrics", choices=("on", "off"), default="on", help="METRICS_ENABLED (bench.metrics_ab runs both)"
    )
    args = parser.parse_args(argv)
    raise_fd_limit()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    all_results = []
    for kind in args.servers.split(","):
        print(f"== {kind}", file=sys.stderr, flush=True)
        env = {"METRICS_ENABLED": "true" if args.metrics == "on" else "false"}
        all_results.append(run_server(kind.strip(), args.quick, env))
    (out / "results.json").write_text(json.dumps({"quick": args.quick, "results": all_results}, indent=2))
    chart(all_results, out / "throughput.png")
    text = table(all_results)
    (out / "table.txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
