"""A real Redis server for the tests: `redis-server` from the system (Debian's `redis-server` package; `.ci/run`
installs it), on a free loopback port, with nothing written to disk. Always stopped at the end.

`redis_server()` yields the URL of a server that runs for the whole block. `RedisServer` is the same server under a
test's control: it can be stopped and started again on the same port (an outage) or paused and resumed (a server
that accepts connections but answers nothing).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from tests.helpers import free_port, wait_for


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server on a fixed loopback port; `stop()` and `start()` may alternate as often as a test likes."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.workdir = tempfile.mkdtemp(prefix="gateway-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (again) on its port and wait until it answers PING."""
        if self.process is not None:
            raise RuntimeError("the Redis server is already running")
        argv = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        argv += ["--dir", self.workdir, "--protected-mode", "yes"]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.process = process
        wait_for(lambda: process.poll() is None and _answers_ping(self.port), timeout=15)

    def stop(self) -> None:
        """Stop the server and wait until it is gone (its port refuses connections); its data goes with it."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections are still accepted by the kernel, but nothing is answered."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextmanager
def controlled_redis_server() -> Iterator[RedisServer]:
    """A started `RedisServer` of the test's own; always stopped and removed at the end."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@contextmanager
def redis_server() -> Iterator[str]:
    """Start a Redis server and yield its URL."""
    with controlled_redis_server() as server:
        yield server.url
