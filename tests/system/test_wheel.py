"""The built wheel is complete and lean: installed into a fresh virtual environment outside the source tree, it serves
the console, its assets, the sign-in pages and the API document, and it ships only the gateway's own packages."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from gateway_site import __version__
from tests.helpers import ROOT, clean_env, free_port, project_files, server_process

OWN_PACKAGES = {"gateway_site", "oauthapp", "relay", "shares", "tunnels", "console"}


def source_copy(target: Path) -> Path:
    """The project's files (tracked and new, not ignored) copied to `target`, so the build leaves the checkout clean."""
    for name in project_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = source_copy(tmp_path_factory.mktemp("source"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q", "-w", str(out), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    assert "SetuptoolsDeprecationWarning" not in build.stderr, build.stderr
    (built,) = out.glob("commands_gateway-*.whl")
    return built


def test_the_wheel_holds_templates_assets_and_only_our_packages(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    dist_info = f"commands_gateway-{__version__}.dist-info"
    assert top_level == OWN_PACKAGES | {dist_info}
    for expected in (
        "console/templates/console/index.html",
        "console/static/console/app.js",
        "console/static/console/console.css",
        "oauthapp/templates/oauth/signin_demo.html",
        "shares/templates/shares/invite.html",
        "gateway_site/templates/base.html",
        "gateway_site/openapi.yaml",
        f"{dist_info}/licenses/LICENSE",
    ):
        assert expected in names, expected
    metadata = zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: MIT" in metadata


def test_the_installed_wheel_serves_everything_outside_the_source_tree(wheel, tmp_path):
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('bench'), u.find_spec('tests'))"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert probe.stdout.split() == ["None", "None"], probe.stdout + probe.stderr

    port = free_port()
    env = clean_env()
    env.pop("PYTHONPATH", None)
    argv = [str(environment / "bin" / "daphne"), "-v", "0", "-b", "127.0.0.1", "-p", str(port)]
    serve = server_process([*argv, "gateway_site.asgi:application"], port=port, env=env, cwd=tmp_path)
    with serve as server, httpx.Client(base_url=server.base_url, timeout=10) as http:
        console = http.get("/console")
        assert console.status_code == 200 and '<script type="module"' in console.text
        asset = http.get("/console/assets/app.js")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript")
        assert asset.content == (ROOT / "console" / "static" / "console" / "app.js").read_bytes()
        signin = http.get(
            "/oauth/authorize",
            params={
                "response_type": "code",
                "client_id": "commands-agent",
                "redirect_uri": "http://localhost:61696/callback",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            },
        )
        assert signin.status_code == 200 and "<form" in signin.text
        document = http.get("/openapi.yaml")
        assert document.status_code == 200 and document.content == (ROOT / "docs" / "openapi.yaml").read_bytes()
        assert http.get("/healthz").json()["version"] == __version__
        assert http.get("/readyz").status_code == 200
