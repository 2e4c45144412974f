"""Memory under attack: `python -m bench.attacks [--servers daphne,uvicorn] [--out bench/results]`.

Starts the gateway as in production under each server and runs the attacks of decisions.md H2-H3 one after the
other, reporting the server's resident memory before, at its peak during the attack, and after it (once it has
settled): garbage route ids, random well-formed route ids, a backlog flood, ten stalled stream readers, 150 large
posts to an unknown route, and a tunnel that never answers. Everything stays on loopback and is bounded in count and
time. The bounds it checks are in docs/performance.md: no attack adds more than 64 MiB at its peak, and memory comes
back within 10% of where it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench.common import Identity, ack_for, frame, owner_token, register_device, start_server

PEAK_BOUND_MIB = 64
RETURN_BOUND = 0.10
# What an attack may leave behind on purpose: the flooded session keeps its replay backlog (SESSION_BACKLOG_BYTES).
RETAINED_BY_DESIGN_KIB = {"backlog flood": 8 * 1024}


class Sampler:
    """The server's RSS every 20 ms on a thread, for the peak."""

    def __init__(self, read: Callable[[], int]) -> None:
        self.read, self.peak, self.running = read, 0, True
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.read())
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()


def settle(read: Callable[[], int], seconds: float = 25.0) -> int:
    """RSS once it has stopped falling for 7 s (longer than the gateway's 5 s housekeeping), or after `seconds`."""
    deadline = time.monotonic() + seconds
    lowest, lowest_at = read(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - lowest_at < 7:
        time.sleep(0.5)
        now = read()
        if now < lowest - 128:  # fell by more than 128 KiB: keep waiting
            lowest, lowest_at = now, time.monotonic()
    return read()


class Owner:
    """A demo owner with one device whose agent socket is open, and acknowledged sessions on it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.token = owner_token(base, f"attack-{secrets.token_hex(4)}")
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.device_id = f"dev_{secrets.token_hex(16)}"
        self.identity = Identity.new()
        with httpx.Client(base_url=base, timeout=30) as http:
            register_device(http, self.token, self.device_id, self.identity)

    async def agent(self) -> Any:
        url = self.base.replace("http://", "ws://") + f"/gateway/v1/agent/connect?device_id={self.device_id}"
        ws = await websockets.connect(url, additional_headers=self.headers, max_size=None)
        await ws.recv()  # gateway.connected
        await ws.recv()  # transport.init
        return ws

    async def session(self, http: httpx.AsyncClient, ws: Any) -> str:
        sid = f"sess_{secrets.token_hex(8)}"
        body = {
            "device_id": self.device_id,
            "handshake_id": f"hs_{sid}",
            "client_session_nonce": "bm9uY2U=",
            "client_ephemeral_public_key": "zY++EJfS+1RqnBvK+5wAOKlyQqMxyvlENYEvCqkqdBU=",
        }
        init = await http.post(f"/gateway/v1/sessions/{sid}/handshake/client-init", json=body, headers=self.headers)
        init.raise_for_status()
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if message.get("type") == "session.handshake.request" and message["session_id"] == sid:
                break
        ack = ack_for(message, self.identity)
        answer = await http.post(f"/gateway/v1/sessions/{sid}/handshake/agent-ack", json=ack, headers=self.headers)
        answer.raise_for_status()
        return sid


async def _bounded(tasks: list[Callable[[], Awaitable[Any]]], concurrency: int) -> list[Any]:
    gate = asyncio.Semaphore(concurrency)

    async def one(task: Callable[[], Awaitable[Any]]) -> Any:
        async with gate:
            try:
                return await task()
            except (httpx.HTTPError, OSError) as exc:
                return type(exc).__name__

    return await asyncio.gather(*(one(task) for task in tasks))


def _statuses(results: list[Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for result in results:
        key = str(result.status_code) if isinstance(result, httpx.Response) else str(result)
        counts[key] = counts.get(key, 0) + 1
    return counts


async def garbage_route_ids(base: str) -> dict[str, Any]:
    """1,500 posts whose route id is 60 KB of junk: refused by the grammar, nothing stored."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        junk = "x" * 60_000
        results = await _bounded([lambda: http.post(f"/integrations/{junk}/token") for _ in range(1500)], 30)
    return {"requests": 1500, "statuses": _statuses(results)}


async def random_route_ids(base: str) -> dict[str, Any]:
    """20,000 posts to well-formed route ids that do not exist: bounded snapshot and rate-window stores."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        ids = [f"rt_{secrets.token_hex(16)}" for _ in range(20_000)]

        def poster(rid: str) -> Callable[[], Awaitable[httpx.Response]]:
            return lambda: http.post(f"/integrations/{rid}/token")

        results = await _bounded([poster(rid) for rid in ids], 50)
    return {"requests": len(ids), "statuses": _statuses(results)}


async def backlog_flood(base: str) -> dict[str, Any]:
    """One agent pushes 300 frames of 900 KiB into one session: the backlog keeps SESSION_BACKLOG_BYTES."""
    owner = Owner(base)
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        ws = await owner.agent()
        sid = await owner.session(http, ws)
        for seq in range(1, 301):
            await ws.send(json.dumps(frame(sid, seq, "agent_to_client", "session.result", 900 * 1024 * 3 // 4)))
        await ws.send(json.dumps({"type": "ping"}))
        await asyncio.wait_for(_until_type(ws, "heartbeat"), 60)  # every frame before the ping was processed
        await ws.close()
    return {"frames": 300, "frame_kib": 900}


async def _until_type(ws: Any, kind: str) -> None:
    while json.loads(await ws.recv()).get("type") != kind:
        pass


def _stalled(port: int, path: str, token: str) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    return sock


async def stalled_readers(base: str) -> dict[str, Any]:
    """Ten readers open a session's stream and never read while the agent pushes 100 frames of 512 KiB."""
    owner = Owner(base)
    port = int(base.rsplit(":", 1)[1])
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        ws = await owner.agent()
        sid = await owner.session(http, ws)
        readers = [_stalled(port, f"/gateway/v1/sessions/{sid}/events", owner.token) for _ in range(10)]
        await asyncio.sleep(0.5)  # the streams are open before the flood
        for seq in range(1, 101):
            await ws.send(json.dumps(frame(sid, seq, "agent_to_client", "session.result", 512 * 1024 * 3 // 4)))
        await ws.send(json.dumps({"type": "ping"}))
        await asyncio.wait_for(_until_type(ws, "heartbeat"), 60)
        await ws.close()
    for reader in readers:
        reader.close()
    return {"readers": 10, "frames": 100, "frame_kib": 512}


async def unknown_route_posts(base: str) -> dict[str, Any]:
    """150 concurrent posts of 5 MiB to a route that does not exist."""
    body = b"x" * (5 * 1024 * 1024)
    rid = f"rt_{secrets.token_hex(16)}"
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        results = await _bounded(
            [lambda: http.post(f"/integrations/{rid}/token", content=body) for _ in range(150)], 150
        )
    return {"requests": 150, "body_mib": 5, "statuses": _statuses(results)}


async def silent_tunnel(base: str) -> dict[str, Any]:
    """A tunnel that never answers, and 1,000 webhooks of 64 KiB sent at its route (deadline 10 s)."""
    owner = Owner(base)
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        created = (
            await http.post(
                "/gateway/v1/integrations/routes",
                json={"device_id": owner.device_id, "interface_type": "http", "deadline_ms": 10_000},
                headers=owner.headers,
            )
        ).json()
        url = base.replace("http://", "ws://") + f"/gateway/v1/integrations/tunnel/connect?device_id={owner.device_id}"
        async with websockets.connect(url, additional_headers=owner.headers, max_size=None) as tunnel:
            await tunnel.recv()
            await tunnel.send(json.dumps({"type": "tunnel.activate", "routes": [created["route"]["route_id"]]}))
            await tunnel.recv()
            drain = asyncio.ensure_future(_drain(tunnel))
            path = "/integrations/" + created["public_url"].split("/integrations/", 1)[1]
            body = b"y" * 65536
            results = await _bounded([lambda: http.post(path, content=body) for _ in range(1000)], 200)
            drain.cancel()
    return {"requests": 1000, "statuses": _statuses(results)}


async def _drain(ws: Any) -> None:
    async for _ in ws:
        pass


ATTACKS: list[tuple[str, Callable[[str], Coroutine[Any, Any, dict[str, Any]]]]] = [
    ("garbage route ids", garbage_route_ids),
    ("random route ids", random_route_ids),
    ("backlog flood", backlog_flood),
    ("ten stalled readers", stalled_readers),
    ("150 x 5 MiB to an unknown route", unknown_route_posts),
    ("silent tunnel", silent_tunnel),
]


def run_server(kind: str) -> list[dict[str, Any]]:
    server = start_server(kind)
    rows = []
    try:
        # Warm up first, so that "before" is a server that has served: imports, the worker threads and their
        # database connections, the first of each kind of request.
        with httpx.Client(base_url=server.url, timeout=30) as http:
            http.get("/healthz")
            for _ in range(500):
                http.post(f"/integrations/rt_{secrets.token_hex(16)}/token")
        for name, attack in ATTACKS:
            before = settle(server.rss_kib, 5)
            started = time.monotonic()
            with Sampler(server.rss_kib) as sampler:
                detail = asyncio.run(attack(server.url))
            seconds = time.monotonic() - started
            after = settle(server.rss_kib)
            peak = max(sampler.peak, after)
            added = round((peak - before) / 1024, 1)
            returned = after <= before * (1 + RETURN_BOUND) + RETAINED_BY_DESIGN_KIB.get(name, 0)
            row: dict[str, Any] = {
                "server": kind,
                "attack": name,
                "seconds": round(seconds, 1),
                "before_mib": round(before / 1024, 1),
                "peak_mib": round(peak / 1024, 1),
                "after_mib": round(after / 1024, 1),
                "added_at_peak_mib": added,
                "returned": returned,
                "within_bounds": added <= PEAK_BOUND_MIB and returned,
                "detail": detail,
            }
            rows.append(row)
            print(_line(row), flush=True)
    finally:
        server.stop()
    return rows


def _line(row: dict[str, Any]) -> str:
    verdict = "ok" if row["within_bounds"] else "OVER"
    return (
        f"{row['server']:8} {row['attack']:34} before {row['before_mib']:7.1f}  peak {row['peak_mib']:7.1f}  "
        f"after {row['after_mib']:7.1f}  (+{row['added_at_peak_mib']:.1f} MiB at peak) {verdict}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="daphne,uvicorn")
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args(argv)
    rows = [row for kind in args.servers.split(",") for row in run_server(kind.strip())]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "attacks.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "attacks.txt").write_text("\n".join(_line(row) for row in rows) + "\n")
    return 0 if all(row["within_bounds"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
