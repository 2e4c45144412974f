"""Load-generator processes. Each entry point runs its own asyncio loop in a separate process and reports a dict on
its queue. Every loop is bounded by a count and a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from typing import Any

import httpx
import websockets

from bench.common import Identity, ack_for, frame


def _wait(event: Any, timeout: float) -> bool:
    return bool(event.wait(timeout))


async def _wait_event(event: Any, timeout: float) -> bool:
    return await asyncio.get_running_loop().run_in_executor(None, _wait, event, timeout)


# -- the agent: acks handshakes, records client->agent latency, sends agent->client frames ---------------------------


def agent(cfg: dict[str, Any], ready: Any, go: Any, done: Any, out: Any) -> None:
    out.put(asyncio.run(_agent(cfg, ready, go, done)))


async def _agent(cfg: dict[str, Any], ready: Any, go: Any, done: Any) -> dict[str, Any]:
    base, token = cfg["base"], cfg.get("token", "")
    identity = Identity.new() if cfg.get("baseline") else Identity(_load_key(cfg["identity"]))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ws_url = base.replace("http://", "ws://") + cfg["agent_path"]
    latencies: list[float] = []
    received = 0
    last = [0.0]
    deadline = time.monotonic() + cfg["deadline"]
    async with (
        websockets.connect(ws_url, additional_headers=headers, max_size=None) as ws,
        httpx.AsyncClient(base_url=base, timeout=30) as http,
    ):

        async def read() -> None:
            nonlocal received
            async for text in ws:
                message = json.loads(text)
                kind = message.get("type")
                if kind == "session.handshake.request":
                    ack = ack_for(message, identity)
                    sid = message["session_id"]
                    await http.post(f"/gateway/v1/sessions/{sid}/handshake/agent-ack", json=ack, headers=headers)
                elif kind == "session.message":
                    if "bench_t" in message:  # wrk's frames carry no send time (wrk reports the latency)
                        latencies.append(time.time() - message["bench_t"])
                    received += 1
                    last[0] = time.time()

        reader = asyncio.ensure_future(read())
        ready.set()
        sent = 0
        started = time.time()
        if cfg.get("send_total") and await _wait_event(go, cfg["deadline"]):
            started = time.time()
            sent = await _send_frames(ws, cfg)
        while time.monotonic() < deadline and not done.is_set():
            # The count is known up front, or set later by the parent in a shared value (after a wrk run).
            expect = cfg.get("expect") or (cfg["expect_value"].value if "expect_value" in cfg else 0)
            if expect and received >= expect:
                break
            await asyncio.sleep(0.05)
        reader.cancel()
    return {"received": received, "latencies": latencies, "sent": sent, "send_started": started, "last": last[0]}


async def _send_frames(ws: Any, cfg: dict[str, Any]) -> int:
    sessions: list[str] = cfg["sessions"]
    total: int = cfg["send_total"]
    rate = cfg.get("rate", 0)
    seqs = dict.fromkeys(sessions, 0)
    start = time.monotonic()
    deadline = start + cfg["deadline"]
    for n in range(total):
        if rate:
            delay = start + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        if time.monotonic() > deadline:
            return n
        sid = sessions[n % len(sessions)]
        seqs[sid] += 1
        await ws.send(json.dumps(frame(sid, seqs[sid], "agent_to_client", "session.result")))
    return total


def _load_key(raw: bytes) -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(raw)


# -- posters: client->agent frames over HTTP ----------------------------------------------------------------------


def poster(cfg: dict[str, Any], out: Any) -> None:
    out.put(asyncio.run(_poster(cfg)))


async def _poster(cfg: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {cfg['token']}"} if cfg.get("token") else {}
    sessions: list[str] = cfg["sessions"]
    per_session, rate = cfg["per_session"], cfg.get("rate", 0)
    errors = 0
    ok = 0
    deadline = time.monotonic() + cfg["deadline"]
    limits = httpx.Limits(max_connections=len(sessions), max_keepalive_connections=len(sessions))
    async with httpx.AsyncClient(base_url=cfg["base"], timeout=30, limits=limits) as http:

        async def run(index: int, sid: str) -> None:
            nonlocal errors, ok
            interval = len(sessions) / rate if rate else 0
            start = time.monotonic() + index * (interval / len(sessions) if interval else 0)
            for seq in range(1, per_session + 1):
                if interval:
                    delay = start + (seq - 1) * interval - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if time.monotonic() > deadline:
                    return
                try:
                    response = await http.post(
                        cfg["message_path"].format(sid=sid),
                        json=frame(sid, seq, "client_to_agent", "session.message"),
                        headers=headers,
                    )
                    if response.status_code == 202:
                        ok += 1
                    else:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1

        await asyncio.gather(*(run(i, sid) for i, sid in enumerate(sessions)))
    return {"ok": ok, "errors": errors}


# -- SSE readers: agent->client frames ---------------------------------------------------------------------------


def reader(cfg: dict[str, Any], ready: Any, done: Any, out: Any) -> None:
    out.put(asyncio.run(_reader(cfg, ready, done)))


async def _reader(cfg: dict[str, Any], ready: Any, done: Any) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {cfg['token']}"} if cfg.get("token") else {}
    streams: list[str] = cfg["streams"]  # session ids, one stream each (repeat an id for fan-out)
    latencies: list[float] = []
    received = 0
    opened = 0
    last = [0.0]
    deadline = time.monotonic() + cfg["deadline"]
    all_open = asyncio.Event()
    limits = httpx.Limits(max_connections=len(streams) + 2)
    async with httpx.AsyncClient(base_url=cfg["base"], timeout=httpx.Timeout(30, read=None), limits=limits) as http:

        async def one(sid: str) -> None:
            nonlocal received, opened
            async with http.stream("GET", cfg["events_path"].format(sid=sid), headers=headers) as response:
                buffer = ""
                async for text in response.aiter_text():
                    buffer += text
                    while "\n\n" in buffer:
                        block, buffer = buffer.split("\n\n", 1)
                        if block.startswith(":connected"):
                            opened += 1
                            if opened == len(streams):
                                all_open.set()
                            continue
                        for line in block.split("\n"):
                            if line.startswith("data: "):
                                data = json.loads(line[6:])
                                if "bench_t" in data:
                                    latencies.append(time.time() - data["bench_t"])
                                    received += 1
                                    last[0] = time.time()

        tasks = [asyncio.ensure_future(one(sid)) for sid in streams]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_open.wait(), timeout=30)
        ready.set()
        while time.monotonic() < deadline and not done.is_set():
            if cfg.get("expect") and received >= cfg["expect"]:
                break
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"received": received, "latencies": latencies, "opened": opened, "last": last[0]}


# -- many agent sockets: idle memory and reconnect storms -----------------------------------------------------------


def sockets(cfg: dict[str, Any], ready: Any, go: Any, done: Any, out: Any) -> None:
    out.put(asyncio.run(_sockets(cfg, ready, go, done)))


async def _sockets(cfg: dict[str, Any], ready: Any, go: Any, done: Any) -> dict[str, Any]:
    base_ws = cfg["base"].replace("http://", "ws://")
    devices: list[tuple[str, str]] = cfg["devices"]  # (device_id, token)
    errors = 0
    samples: list[str] = []
    connected: dict[str, Any] = {}

    async def connect(device_id: str, token: str) -> bool:
        nonlocal errors
        try:
            ws = await websockets.connect(
                f"{base_ws}/gateway/v1/agent/connect?device_id={device_id}",
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=60,
            )
        except Exception as exc:
            errors += 1
            if len(samples) < 3:
                samples.append(f"{exc.__class__.__name__}: {exc}"[:200])
            return False
        connected[device_id] = ws
        asyncio.ensure_future(_drain(ws))
        return True

    semaphore = asyncio.Semaphore(cfg.get("in_flight", 50))  # connection attempts in flight in this process

    async def limited(device_id: str, token: str) -> bool:
        async with semaphore:
            return await connect(device_id, token)

    await asyncio.gather(*(limited(d, t) for d, t in devices))
    initial_errors = errors
    heartbeat = asyncio.ensure_future(_heartbeats(connected, cfg.get("heartbeat", 15.0)))
    ready.set()
    storm: dict[str, Any] = {}
    if cfg.get("storm") and await _wait_event(go, cfg["deadline"]):
        errors = 0
        window = cfg["storm_window"]
        started = time.time()

        async def reconnect(device_id: str, token: str) -> None:
            await asyncio.sleep(random.uniform(0, window))  # noqa: S311 - spreading load, not security
            old = connected.pop(device_id, None)
            if old is not None:
                await old.close()
            await connect(device_id, token)

        await asyncio.gather(*(reconnect(d, t) for d, t in devices))
        storm = {"errors": errors, "reconnect_seconds": round(time.time() - started, 2), "started": started}
    await _wait_event(done, cfg["deadline"])
    heartbeat.cancel()
    await asyncio.gather(*(ws.close() for ws in connected.values()), return_exceptions=True)
    return {"connected": len(connected), "connect_errors": initial_errors, "error_samples": samples, **storm}


async def _drain(ws: Any) -> None:
    try:
        async for _ in ws:
            pass
    except Exception:  # the socket closed; nothing to do
        return


async def _heartbeats(connected: dict[str, Any], interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        for ws in list(connected.values()):
            try:
                await ws.send('{"type":"heartbeat"}')
            except Exception:  # a socket being replaced during a storm
                continue


# -- webhook ingress: an echoing tunnel and the senders ---------------------------------------------------------------


def tunnel(cfg: dict[str, Any], ready: Any, done: Any, out: Any) -> None:
    out.put(asyncio.run(_tunnel(cfg, ready, done)))


async def _tunnel(cfg: dict[str, Any], ready: Any, done: Any) -> dict[str, Any]:
    url = (
        cfg["base"].replace("http://", "ws://")
        + f"/gateway/v1/integrations/tunnel/connect?device_id={cfg['device_id']}"
    )
    answered = 0
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {cfg['token']}"}, max_size=None
    ) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "tunnel.activate", "routes": [cfg["route_id"]]}))
        await ws.recv()
        ready.set()

        async def serve() -> None:
            nonlocal answered
            async for text in ws:
                request = json.loads(text)
                if request.get("type") == "tunnel.request":
                    await ws.send(
                        json.dumps(
                            {
                                "type": "tunnel.response",
                                "request_id": request["request_id"],
                                "status": 200,
                                "headers": [["Content-Type", "application/json"]],
                                "body_base64": request["body_base64"],
                            }
                        )
                    )
                    answered += 1

        server = asyncio.ensure_future(serve())
        await _wait_event(done, cfg["deadline"])
        server.cancel()
    return {"answered": answered}


def webhooks(cfg: dict[str, Any], out: Any) -> None:
    out.put(asyncio.run(_webhooks(cfg)))


async def _webhooks(cfg: dict[str, Any]) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    statuses: dict[str, int] = {}  # what the errors were: HTTP status, or the exception's name
    concurrency, total, rate = cfg["concurrency"], cfg["total"], cfg.get("rate", 0)
    deadline = time.monotonic() + cfg["deadline"]
    counter = iter(range(total))
    start = time.monotonic()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=cfg["base"], timeout=30, limits=limits) as http:

        async def run() -> None:
            nonlocal errors
            for n in counter:
                if rate:
                    delay = start + n / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if time.monotonic() > deadline:
                    return
                sent = time.monotonic()
                try:
                    response = await http.post(
                        cfg["path"],
                        content=cfg.get("body", b'{"event":"bench"}'),
                        headers={"Content-Type": "application/json"},
                    )
                    if response.status_code == 200:
                        latencies.append(time.monotonic() - sent)
                    else:
                        errors += 1
                        statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
                except httpx.HTTPError as exc:
                    errors += 1
                    statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1

        await asyncio.gather(*(run() for _ in range(concurrency)))
    seconds = time.monotonic() - start
    return {"ok": len(latencies), "errors": errors, "statuses": statuses, "latencies": latencies, "seconds": seconds}
