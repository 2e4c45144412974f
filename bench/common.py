"""Shared pieces of the benchmark: servers, protocol helpers and statistics. Loopback only, everything bounded."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
SIGNING_KEY = "benchmark-signing-key-that-is-long-enough-0123456789"
SERVER_ENV = {
    "JWT_SIGNING_KEY": SIGNING_KEY,
    "DOTENV_PATH": "-",
    "AUTH_MODE": "demo",
    # The benchmark measures throughput, not the limiter: lift the ingress limits out of the way.
    "INGRESS_GLOBAL_LIMIT_PER_WINDOW": "1000000",
    "INGRESS_IP_LIMIT_PER_WINDOW": "100000",
    "INGRESS_ROUTE_LIMIT_PER_WINDOW": "100000",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit(wanted: int = 20000) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, wanted), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@dataclass
class Server:
    kind: str  # daphne | uvicorn
    app: str  # gateway | baseline
    port: int
    process: subprocess.Popen[bytes]
    log: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()


def start_server(
    kind: str, app: str = "gateway", extra_env: dict[str, str] | None = None, source: Path | None = None
) -> Server:
    """The gateway as in production: demo mode, one server process, on a free loopback port (`extra_env` on top).

    `source` is another tree to run the application from (`bench.run --compare`: an older revision), with this
    checkout's virtualenv."""
    port = free_port()
    target = "gateway_site.asgi:application" if app == "gateway" else "bench.baseline_app:application"
    if kind == "daphne":
        # As the Procfile runs it: Twisted's default listen backlog (50) drops connections in a burst, and Daphne
        # refuses a WebSocket the application has not accepted within 5 s, which a burst of admissions can exceed.
        endpoint = f"tcp:port={port}:interface=127.0.0.1:backlog=1024"
        command = [
            sys.executable,
            "-m",
            "daphne",
            "-e",
            endpoint,
            "--websocket_connect_timeout",
            "30",
            "--websocket_timeout",
            "-1",
            target,
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
            "--lifespan",
            "off",
            # As production runs it: permessage-deflate costs about 40 KiB per idle socket.
            "--ws-per-message-deflate",
            "false",
        ]
    env = {**os.environ, **SERVER_ENV, "DJANGO_SETTINGS_MODULE": "gateway_site.settings", "PORT": str(port)}
    env.update(extra_env or {})
    cwd = source or ROOT
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH", "")]))
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by Server.stop
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=lambda: raise_fd_limit()
    )
    server = Server(kind, app, port, process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{kind} exited: {log.read().decode()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{kind} did not start")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(latencies_s, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies_s, 99) * 1000, 2),
        "samples": len(latencies_s),
    }


# -- protocol helpers (real OAuth tokens, real identity keys and signatures) -------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def owner_token(base: str, client_id: str) -> str:
    """An access token for subject `client:<client_id>` with the device scope, signed with the server's key.

    Minted here rather than through /oauth/token, whose per-IP limit (30 a minute) would stop the benchmark's
    hundreds of owners; it is the same EdDSA token the demo client_credentials grant issues.
    """
    import jwt

    from gateway_site.signing import derive_signing_key

    port = base.rsplit(":", 1)[1]
    key = derive_signing_key(SIGNING_KEY)
    now = int(time.time())
    claims = {
        "name": client_id,
        "scope": "device",
        "auth_mode": "demo",
        # Several processes share one issuer, their PUBLIC_BASE_URL (bench.scaleout sets it).
        "iss": os.environ.get("BENCH_ISSUER") or f"http://localhost:{port}",
        "sub": f"client:{client_id}",
        "aud": ["commands-gateway"],
        "exp": now + 3600,
        "nbf": now,
        "iat": now,
    }
    return str(jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid, "typ": "JWT"}))


@dataclass
class Identity:
    private: Ed25519PrivateKey

    @classmethod
    def new(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_b64(self) -> str:
        return b64(self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def register_device(http: httpx.Client, token: str, device_id: str, identity: Identity) -> None:
    response = http.put(
        f"/gateway/v1/devices/{device_id}/identity-key",
        json={"public_key": identity.public_b64},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()


def ack_for(request: dict[str, Any], identity: Identity) -> dict[str, Any]:
    """The agent's handshake ack (the benchmark agent never decrypts, so its ephemeral key is just random)."""
    agent_key = b64(os.urandom(32))
    text = "|".join(
        [
            request["session_id"],
            request["handshake_id"],
            request["client_ephemeral_public_key"],
            request["client_session_nonce"],
            agent_key,
        ]
    )
    digest = hashlib.sha256(text.encode()).digest()
    return {
        "device_id": request["device_id"],
        "handshake_id": request["handshake_id"],
        "agent_ephemeral_public_key": agent_key,
        "agent_identity_signature": b64(identity.private.sign(digest)),
        "transcript_hash": b64(digest),
    }


def frame(session_id: str, seq: int, direction: str, kind: str, payload_bytes: int = 64) -> dict[str, Any]:
    """An envelope that passes the gateway's checks (the gateway never decrypts), with a send timestamp."""
    return {
        "type": kind,
        "session_id": session_id,
        "message_id": f"m{seq}",
        "encrypted": True,
        "alg": "aes-256-gcm",
        "direction": direction,
        "seq": seq,
        "nonce": "YzJhAAAAAAAAAAAB",
        "ciphertext": b64(b"x" * payload_bytes),
        "tag": "SIi61bUcihqUE/VCH4CKtA==",
        "aad": "YWFk",
        "bench_t": time.time(),
    }
