"""Layering: the project package `gateway_site` imports no app package, not even inside a function.

Apps build on the gateway; the gateway reaches app code only through import strings in settings.
"""

from __future__ import annotations

import ast

from tests.helpers import ROOT

APP_PACKAGES = frozenset({"relay", "shares", "tunnels", "oauthapp", "console"})


def app_imports(source: str) -> list[str]:
    """Every module an import statement anywhere in `source` names that belongs to an app package."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [name for name in names if name.split(".", 1)[0] in APP_PACKAGES]
    return found


def test_the_check_sees_nested_and_top_level_imports():
    source = (
        "import relay.consumers\n"
        "from gateway_site import errors\n"
        "def f():\n"
        "    from oauthapp.tokens import current_key\n"
        "    import tunnels\n"
        "class C:\n"
        "    def m(self):\n"
        "        from shares import permissions\n"
        "        from console.views import page\n"
        "        from relayx import y\n"
    )
    assert app_imports(source) == ["relay.consumers", "oauthapp.tokens", "tunnels", "shares", "console.views"]


def test_gateway_site_imports_no_app():
    offenders = {
        str(path.relative_to(ROOT)): imports
        for path in sorted((ROOT / "gateway_site").rglob("*.py"))
        if (imports := app_imports(path.read_text()))
    }
    assert offenders == {}
