"""docs/architecture.md, "Apps and layers": the apps build on each other in one direction only, and no module of the
relay grows past 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway_site", "oauthapp", "relay", "shares", "tunnels", "console")


def imported_packages(package: str) -> dict[str, set[str]]:
    """For each module of `package`, the other project packages it imports (at any depth of the file)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = {n for n in names if n in PACKAGES and n != package}
    return found


def package_graph() -> dict[str, set[str]]:
    return {p: set().union(*imported_packages(p).values()) for p in PACKAGES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found = []

    def walk(node: str, trail: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in trail:
                found.append([*trail[trail.index(nxt) :], nxt])
            elif len(trail) < len(graph):
                walk(nxt, [*trail, nxt])

    for start in graph:
        walk(start, [start])
    return found


def test_no_package_imports_another_that_imports_it_back():
    assert cycles(package_graph()) == []


def test_the_layers_point_one_way():
    graph = package_graph()
    assert graph["gateway_site"] == set()
    assert graph["relay"] <= {"gateway_site"}
    assert "tunnels" not in graph["shares"] and "shares" not in graph["tunnels"]


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"], ["b", "a", "b"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_relay_module_is_over_400_lines():
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "relay").glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 400} == {}
