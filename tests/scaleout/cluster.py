"""Several real gateway processes behind nginx, sharing one Redis and one PostgreSQL database (docs/scaling.md).

Each process is the production command of the Procfile (Daphne) with `STATE_BACKEND=redis` and its own `NODE_ID`;
nginx runs `deploy/nginx-gateway.conf.template` rendered for their ports. Tests reach a process directly
(`cluster.nodes[i].base_url`) to place a connection on a chosen process, or go through nginx (`cluster.base_url`).
Everything started here is stopped on exit.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import string
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import (
    ROOT,
    LiveServer,
    clean_env,
    free_port,
    http_get_raw,
    procfile_server,
    run_manage,
    service_missing,
    wait_for,
)

TEMPLATE = ROOT / "deploy" / "nginx-gateway.conf.template"
_databases = itertools.count(1)

MAIN_CONF = """\
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/gateway.conf;
}}
"""


@dataclass
class Cluster:
    nodes: list[LiveServer]
    node_ids: list[str]
    port: int  # nginx
    env: dict[str, str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, index: int) -> str:
        return self.nodes[index].base_url


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if found is None:
        raise FileNotFoundError("nginx is not installed (apt-get install nginx-light)")
    return found


def render_site(listen: int, ports: list[int]) -> str:
    """The deployment template with this cluster's listen port and upstream servers (as envsubst would)."""
    servers = " ".join(f"server 127.0.0.1:{port};" for port in ports)
    return string.Template(TEMPLATE.read_text()).safe_substitute(LISTEN=f"127.0.0.1:{listen}", UPSTREAM_SERVERS=servers)


@contextmanager
def nginx(ports: list[int], listen: int) -> Iterator[int]:
    binary = nginx_binary()
    root = tempfile.mkdtemp(prefix="gateway-nginx-")
    os.chmod(root, 0o755)  # noqa: S103 - nginx workers run as an unprivileged user when started as root
    Path(root, "gateway.conf").write_text(render_site(listen, ports))
    Path(root, "nginx.conf").write_text(MAIN_CONF.format(root=root))
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    process = subprocess.Popen([binary, "-p", root, "-c", f"{root}/nginx.conf"], stdout=log, stderr=subprocess.STDOUT)

    def up() -> bool:
        if process.poll() is not None:
            log.seek(0)
            raise AssertionError(f"nginx exited with {process.returncode}: {log.read().decode()[-2000:]}")
        return b" 200 " in http_get_raw(listen, "/healthz")

    try:
        wait_for(up, timeout=20)
        yield listen
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(postgres_url: str) -> str:
    """A new, empty database on the test PostgreSQL server; returns its URL."""
    import psycopg

    name = f"cluster_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"


def fresh_redis(redis_url: str) -> str:
    """A Redis database number of its own (1-15), emptied, so clusters never see each other's keys."""
    import redis

    index = next(_databases) % 15 + 1
    url = redis_url.rsplit("/", 1)[0] + f"/{index}"
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


@contextmanager
def gateway_cluster(redis_url: str, postgres_url: str, *, size: int = 2, **env_overrides: str) -> Iterator[Cluster]:
    """`size` gateway processes sharing a fresh Redis database and a fresh PostgreSQL database, behind nginx."""
    listen = free_port()
    env = {
        "STATE_BACKEND": "redis",
        # The one public address: every token names it as its issuer, whichever process issued it.
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{listen}",
        "REDIS_URL": fresh_redis(redis_url),
        "DATABASE_URL": fresh_database(postgres_url),
        **env_overrides,
    }
    migrated = run_manage("migrate", "--no-input", env=clean_env(**env), timeout=180)
    assert migrated.returncode == 0, migrated.stderr
    node_ids = [f"node-{chr(ord('a') + i)}" for i in range(size)]
    with ExitStack() as stack:
        nodes = [stack.enter_context(procfile_server(NODE_ID=node_id, **env)) for node_id in node_ids]
        port = stack.enter_context(nginx([node.port for node in nodes], listen))
        cluster = Cluster(nodes, node_ids, port, env)
        wait_for(lambda: all(b" 200 " in http_get_raw(n.port, "/readyz") for n in nodes), timeout=30)
        yield cluster


def require_nginx() -> None:
    """Skip the test without nginx, or fail it in CI (tests.helpers.service_missing)."""
    try:
        nginx_binary()
    except FileNotFoundError as missing:
        service_missing(missing)
