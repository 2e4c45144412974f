"""A real PostgreSQL server for the tests: Debian's `postgresql` package (`.ci/run` installs it), a fresh cluster in a
temporary folder, on a free loopback port, trusting local connections. Always stopped and removed at the end.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` system user the package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from tests.helpers import free_port, wait_for


def _bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (apt-get install postgresql)")
    return found


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL server with an empty database `gateway`; yields its postgres:// URL."""
    initdb, postgres, createdb, pg_isready = _bin("initdb"), _bin("postgres"), _bin("createdb"), _bin("pg_isready")
    root = tempfile.mkdtemp(prefix="gateway-pg-")
    data, sockets = os.path.join(root, "data"), os.path.join(root, "sockets")
    os.makedirs(sockets)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    subprocess.run(
        _as_owner([initdb, "-D", data, "-U", "gateway", "--auth=trust", "-E", "UTF8", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    argv = [postgres, "-D", data, "-p", str(port), "-h", "127.0.0.1", "-k", sockets, "-F", "-c", "fsync=off"]
    process = subprocess.Popen(_as_owner(argv), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:

        def ready() -> bool:
            check = [pg_isready, "-h", "127.0.0.1", "-p", str(port), "-U", "gateway", "-q"]
            return process.poll() is None and subprocess.run(check, capture_output=True).returncode == 0

        wait_for(ready, timeout=30)
        subprocess.run(
            [createdb, "-h", "127.0.0.1", "-p", str(port), "-U", "gateway", "gateway"], check=True, capture_output=True
        )
        yield f"postgres://gateway@127.0.0.1:{port}/gateway"
    finally:
        _stop(data, process)
        shutil.rmtree(root, ignore_errors=True)


def _stop(data: str, process: subprocess.Popen[bytes]) -> None:
    """A fast shutdown of the postmaster itself (runuser, in between as root, may not pass signals on)."""
    with contextlib.suppress(OSError, ValueError), open(os.path.join(data, "postmaster.pid")) as pidfile:
        os.kill(int(pidfile.readline()), signal.SIGINT)
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)
