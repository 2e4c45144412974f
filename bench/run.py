"""The benchmark: `python -m bench.run [--quick] [--servers daphne,uvicorn] [--metrics on|off] [--out bench/results]
[--loader auto|wrk|python] [--compare REV]`.

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
from queue import Empty
from typing import Any

import httpx

from bench import workers
from bench import wrk as wrk_loader
from bench.common import Identity, latency_summary, owner_token, raise_fd_limit, register_device, start_server
from bench.report import chart, table

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


def client_to_agent_wrk(
    base: str, baseline: bool, *, seconds: float, deadline: float, sessions: int = 16, agent_base: str | None = None
) -> dict[str, Any]:
    """Measurement 1 at saturation with wrk: one thread and one keep-alive connection per session, each POSTing
    that session's frames in seq order for `seconds`; the agent process then confirms how many it received."""
    relay = Relay(base, baseline, sessions=sessions, deadline=deadline, agent_base=agent_base)
    expect = CTX.Value("q", 0)
    agent, _, done, agent_out, _ = relay.start_agent(expect_value=expect)
    script = wrk_loader.messages_script(relay.session_ids, relay.paths["message_path"], relay.token)
    try:
        result = wrk_loader.run(base + "/", script, threads=sessions, connections=sessions, seconds=seconds)
    except Exception:
        done.set()
        agent.join(timeout=30)
        raise
    # The agent stops once it has wrk's count (frames in flight when wrk stopped may add a few), or when told to.
    expect.value = max(1, result["ok"])
    try:
        received = dict(agent_out.get(timeout=30))
    except Empty:
        done.set()
        received = dict(agent_out.get(timeout=deadline + 30))
    done.set()
    agent.join(timeout=10)
    return {
        "loader": "wrk",
        "frames_per_s": result["requests_per_s"],
        "posted": result["ok"],
        "received": received["received"],
        "errors": result["errors"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "samples": result["requests"],
        "seconds": result["seconds"],
    }


def loader_ceiling(base: str, *, seconds: float) -> dict[str, Any]:
    """wrk against the baseline app's trivial `/b/ping` under the same server: the rate the loader can offer."""
    result = wrk_loader.run(base + "/b/ping", wrk_loader.get_script(), threads=2, connections=32, seconds=seconds)
    return {k: result[k] for k in ("requests_per_s", "errors", "p50_ms", "p99_ms", "requests", "seconds")}


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
    devices = [(f"dev_idle_{n:05d}_{secrets.token_hex(4)}", owners[n // per_owner]) for n in range(sockets)]
    _register_all(base, devices)
    rss_before = server.rss_kib()
    storm_devices = {d for d, _ in devices[:storm]}
    workers_list = []
    go, done = CTX.Event(), CTX.Event()
    for chunk in _split(devices, _socket_processes(len(devices))):
        ready, queue = CTX.Event(), CTX.Queue()
        chunk_storm = [d for d in chunk if d[0] in storm_devices]
        cfg = {
            "base": base,
            "devices": chunk,
            "deadline": deadline,
            "heartbeat": 15.0,
            "in_flight": _in_flight(len(devices)),
        }
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
        "error_samples": [e for r in results for e in r["error_samples"]][:3],
        "rss_before_mib": round(rss_before / 1024, 1),
        "rss_after_mib": round(rss_after / 1024, 1),
        "kib_per_socket": round((rss_after - rss_before) / max(1, connected), 1),
    }
    time.sleep(2)
    return {"idle": idle, "storm": _storm(base, devices[:storm], deadline, storm_window)}


def _socket_processes(sockets: int) -> int:
    """Socket worker processes: at least 4, and at most 1,000 sockets in each (10,000 idle sockets: 10 processes)."""
    return max(4, (sockets + 999) // 1000)


def _in_flight(sockets: int) -> int:
    """Connection attempts in flight per socket process: about 200 in all, however many processes share them."""
    return max(10, 200 // _socket_processes(sockets))


def _register_all(base: str, devices: list[tuple[str, str]], threads: int = 4) -> None:
    """Registers each device's identity key, from a few threads (10,000 one after the other take a while)."""
    from concurrent.futures import ThreadPoolExecutor

    def register(chunk: list[tuple[str, str]]) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            for device_id, token in chunk:
                register_device(http, token, device_id, Identity.new())

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(register, _split(devices, threads)))


def _storm(base: str, devices: list[tuple[str, str]], deadline: float, window: float) -> dict[str, Any]:
    go, done = CTX.Event(), CTX.Event()
    procs = []
    for chunk in _split(devices, _socket_processes(len(devices))):
        ready, queue = CTX.Event(), CTX.Queue()
        cfg = {
            "base": base,
            "devices": chunk,
            "deadline": deadline,
            "storm": True,
            "storm_window": window,
            "in_flight": _in_flight(len(devices)),
        }
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
    loader: str = "python",
    seconds: float = 10.0,
) -> dict[str, Any]:
    """Measurement 6: webhooks through a tunnel with an echoing tunnel client (connected to `agent_base`); the route
    is created with `route_fields` on top, and the senders post `body` (a small JSON event by default). With
    `loader="wrk"` the saturation phase is wrk (2 threads, 32 connections) for `seconds` instead of the Python
    senders' `requests`."""
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
    results: dict[str, Any] = {}
    for label, cfg in (
        ("saturation", {"concurrency": 32, "total": requests, "rate": 0}),
        ("fixed_rate", {"concurrency": 16, "total": max(1, rate * 5), "rate": rate}),
    ):
        if label not in phases:
            continue
        if label == "saturation" and loader == "wrk":
            script = wrk_loader.post_script(body or b'{"event":"bench"}')
            result = wrk_loader.run(base + path, script, threads=2, connections=32, seconds=seconds)
            results[label] = {
                "loader": "wrk",
                "requests_per_s": result["requests_per_s"],
                "errors": result["errors"],
                "error_statuses": {"non_2xx": result["non_2xx"], "socket": result["socket_errors"]},
                "p50_ms": result["p50_ms"],
                "p99_ms": result["p99_ms"],
                "samples": result["ok"],
            }
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
    # The echoing tunnel client confirms what reached it (every phase together).
    results["tunnel_answered"] = _collect(tunnel, queue, deadline + 30)["answered"]
    return results


def a2c_saturation(
    base: str, baseline: bool, *, scale: float, deadline: float, agent_base: str | None = None
) -> dict[str, Any]:
    """Measurement 2 at saturation, as every benchmark runs it: 10,000 frames (times `scale`) over 20 sessions with
    one reader each."""
    return agent_to_client(
        base,
        baseline,
        frames=int(10000 * scale),
        rate=0,
        sessions=20,
        subscribers=1,
        deadline=deadline,
        agent_base=agent_base,
    )


def resolve_loader(loader: str) -> str:
    """`auto` is wrk when it is installed, else the Python workers."""
    if loader == "auto":
        return "wrk" if wrk_loader.available() else "python"
    if loader == "wrk" and not wrk_loader.available():
        raise SystemExit("--loader wrk: wrk is not installed (apt-get install wrk)")
    return loader


def run_server(
    kind: str,
    quick: bool,
    server_env: dict[str, str] | None = None,
    *,
    loader: str = "auto",
    source: Path | None = None,
    with_baseline: bool = True,
) -> dict[str, Any]:
    """Every measurement under one server. Saturation phases use `loader` (wrk or the Python workers); fixed-rate
    phases always use the Python workers, which stamp each frame's send time. `source` is the tree whose gateway
    runs (`--compare`); the baseline app always comes from this tree."""
    scale = 0.1 if quick else 1.0
    deadline = 60.0 if quick else 120.0
    seconds = 3.0 if quick else 10.0  # each wrk phase
    loader = resolve_loader(loader)
    results: dict[str, Any] = {"server": kind, "loader": loader}

    def timed(label: str, action: Callable[[], Any]) -> Any:
        print(f"  {kind}: {label} …", file=sys.stderr, flush=True)
        return action()

    def c2a_saturation(base: str, baseline: bool) -> dict[str, Any]:
        if loader == "wrk":
            return client_to_agent_wrk(base, baseline, seconds=seconds, deadline=deadline)
        return client_to_agent(base, baseline, frames=int(4000 * scale), rate=0, deadline=deadline)

    server = start_server(kind, extra_env=server_env, source=source)
    try:
        base = server.url
        results["client_to_agent"] = {
            "saturation": timed("client->agent saturation", lambda: c2a_saturation(base, False)),
            "at_300_per_s": timed(
                "client->agent 300/s",
                lambda: client_to_agent(base, False, frames=int(1500 * scale), rate=300, deadline=deadline),
            ),
        }
        results["agent_to_client"] = {
            "saturation": timed(
                "agent->client saturation",
                lambda: a2c_saturation(base, False, scale=scale, deadline=deadline),
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
        results["fan_out_at_1000_per_s"] = timed(
            "fan-out 1000/s",
            lambda: agent_to_client(
                base, False, frames=int(5000 * scale), rate=1000, sessions=1, subscribers=10, deadline=deadline
            ),
        )
        results["ingress"] = timed(
            "ingress",
            lambda: ingress(
                base, requests=int(3000 * scale), rate=300, deadline=deadline, loader=loader, seconds=seconds
            ),
        )
        both = timed(
            "idle sockets and reconnect storm",
            lambda: idle_and_storm(server, sockets=int(10000 * scale), storm=int(2000 * scale), deadline=deadline * 2),
        )
        results["idle"] = both["idle"]
        results["reconnect_storm"] = both["storm"]
    finally:
        server.stop()
    if not with_baseline:
        return results
    baseline = start_server(kind, app="baseline")
    try:
        base = baseline.url
        results["baseline"] = {
            "client_to_agent": timed("baseline client->agent", lambda: c2a_saturation(base, True)),
            "agent_to_client": timed(
                "baseline agent->client",
                lambda: a2c_saturation(base, True, scale=scale, deadline=deadline),
            ),
        }
        if loader == "wrk":
            results["loader_ceiling"] = timed("loader ceiling", lambda: loader_ceiling(base, seconds=seconds))
    finally:
        baseline.stop()
    base_c2a = results["baseline"]["client_to_agent"]["frames_per_s"] or 1
    base_a2c = results["baseline"]["agent_to_client"]["deliveries_per_s"] or 1
    results["ratio_to_baseline"] = {
        "client_to_agent": round(results["client_to_agent"]["saturation"]["frames_per_s"] / base_c2a, 2),
        "agent_to_client": round(results["agent_to_client"]["saturation"]["deliveries_per_s"] / base_a2c, 2),
    }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the load (a smoke run)")
    parser.add_argument("--servers", default="daphne,uvicorn")
    parser.add_argument("--out", default="bench/results")
    parser.add_argument(
        "--metrics", choices=("on", "off"), default="on", help="METRICS_ENABLED (bench.metrics_ab runs both)"
    )
    parser.add_argument(
        "--loader",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="the saturation phases' load generator (auto: wrk when it is installed)",
    )
    parser.add_argument(
        "--compare", metavar="REV", help="run the gateway of git revision REV, then this tree's, and print the ratios"
    )
    args = parser.parse_args(argv)
    raise_fd_limit()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    servers = [kind.strip() for kind in args.servers.split(",")]
    env = {"METRICS_ENABLED": "true" if args.metrics == "on" else "false"}
    if args.compare:
        from bench import compare

        text = compare.run_compare(args.compare, servers, args.quick, env, args.loader, out)
        print(text)
        return 0
    all_results = []
    for kind in servers:
        print(f"== {kind}", file=sys.stderr, flush=True)
        all_results.append(run_server(kind, args.quick, env, loader=args.loader))
    (out / "results.json").write_text(json.dumps({"quick": args.quick, "results": all_results}, indent=2))
    chart(all_results, out / "throughput.png")
    text = table(all_results)
    (out / "table.txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
