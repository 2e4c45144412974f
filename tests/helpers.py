"""Test helpers: free ports, bounded waiting, and running the gateway as a real server process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn, TypeVar

from gateway_site.config import VARIABLES

ROOT = Path(__file__).resolve().parent.parent
# Test vectors produced by the public clients' own crypto code (tests/vectors/README.md).
VECTORS_DIR = ROOT / "tests" / "vectors"
TEST_KEY = "test-signing-secret-at-least-32-bytes-long"
T = TypeVar("T")


def project_files() -> list[str]:
    """The project's files as git sees them: tracked, and new ones that are not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [name for name in listed if (ROOT / name).is_file()]


def vector(name: str) -> Any:
    """One vector file of tests/vectors/, parsed."""
    return json.loads((VECTORS_DIR / name).read_text())


def real_services_required() -> bool:
    """In CI (`CI` set, as `.ci/run` does) a missing Redis or PostgreSQL fails the tests that need it; elsewhere
    they are skipped."""
    return bool(os.environ.get("CI"))


def service_missing(missing: FileNotFoundError) -> NoReturn:
    """A server program a test needs is not installed: fail in CI, skip elsewhere."""
    import pytest

    if real_services_required():
        pytest.fail(str(missing))
    pytest.skip(str(missing))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], T], timeout: float = 15.0, interval: float = 0.05) -> T:
    """Poll `condition` until it returns a truthy value, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except OSError as exc:  # connection refused until the server is up
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last error: {last_error!r})")


def clean_env(**overrides: str) -> dict[str, str]:
    """The process environment without any contract variable, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES and k != "DJANGO_SETTINGS_MODULE"}
    env.update({"DOTENV_PATH": "-", "JWT_SIGNING_KEY": TEST_KEY, "PYTHONUNBUFFERED": "1"})
    env.update(overrides)
    return env


def run_manage(
    *args: str, env: Mapping[str, str], cwd: Path = ROOT, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def http_get_raw(port: int, path: str, timeout: float = 5.0) -> bytes:
    """A plain HTTP/1.1 GET over a socket; returns the whole response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class LiveServer:
    port: int
    _log: IO[bytes]
    process: subprocess.Popen[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the server printed so far."""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")


@contextmanager
def server_process(
    argv: list[str], *, port: int, env: Mapping[str, str], cwd: Path = ROOT, timeout: float = 30
) -> Iterator[LiveServer]:
    """Run a gateway server command until `/healthz` answers 200; always stopped (SIGTERM, then SIGKILL) on exit."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    process = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdout=log, stderr=subprocess.STDOUT)

    def ready() -> bool:
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"{argv[0]} exited with {process.returncode}: {log.read().decode()[-2000:]}")
        return b" 200 " in http_get_raw(port, "/healthz")

    try:
        wait_for(ready, timeout=timeout)
        yield LiveServer(port, log, process)
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


@contextmanager
def daphne_server(**env_overrides: str) -> Iterator[LiveServer]:
    """Run the gateway under Daphne on a free loopback port; always stopped on exit."""
    port = free_port()
    env = clean_env(DJANGO_SETTINGS_MODULE="gateway_site.settings", **env_overrides)
    argv = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "gateway_site.asgi:application"]
    with server_process(argv, port=port, env=env) as server:
        yield server


PROCFILE_COMMAND = (ROOT / "Procfile").read_text().split("web:", 1)[1].strip()


@contextmanager
def procfile_server(**env_overrides: str) -> Iterator[LiveServer]:
    """The production command exactly as the Procfile has it, but listening on loopback only."""
    port = free_port()
    env = clean_env(PORT=str(port), **env_overrides)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = PROCFILE_COMMAND.replace("interface=0.0.0.0", "interface=127.0.0.1")
    with server_process(["bash", "-c", f"exec {command}"], port=port, env=env) as server:
        yield server


@contextmanager
def uvicorn_server(**env_overrides: str) -> Iterator[LiveServer]:
    """Run the gateway under uvicorn on a free loopback port; always stopped on exit."""
    port = free_port()
    env = clean_env(DJANGO_SETTINGS_MODULE="gateway_site.settings", **env_overrides)
    argv = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    argv += ["--ws-max-size", "8388608", "--ws-per-message-deflate", "false"]  # as the README's production command
    with server_process([*argv, "gateway_site.asgi:application"], port=port, env=env) as server:
        yield server
