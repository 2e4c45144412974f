"""The repository stands alone: nothing reads a folder beside it, and every document a comment cites exists."""

from __future__ import annotations

import re

from tests.helpers import ROOT, project_files

THIS_FILE = "tests/system/test_self_contained.py"
CODE_SUFFIXES = (".py", ".js", ".html", ".css", ".yaml", ".toml", ".md")


def tracked_files() -> list[str]:
    return [name for name in project_files() if name.endswith(CODE_SUFFIXES) and name != THIS_FILE]


def test_nothing_reads_outside_the_repository():
    # Assembled from pieces, so that this file does not match its own pattern.
    folder, sep = "sha" + "red", "/"
    alternatives = [
        re.escape(".." + sep) + folder,
        folder + sep + "spec",
        "_".join(("GATEWAY", "SPEC", "DIR")),  # an environment variable pointing at that folder
        r"parent\s*/\s*\"" + folder + '"',
    ]
    outside = re.compile("|".join(alternatives))
    offenders = [name for name in tracked_files() if outside.search((ROOT / name).read_text(errors="replace"))]
    assert offenders == []


def test_every_cited_document_is_in_the_repository():
    cited = re.compile(r"\b((?:docs|tests/vectors)/[\w./-]+\.(?:md|json|yaml))")
    missing = {
        (name, path)
        for name in tracked_files()
        for path in cited.findall((ROOT / name).read_text(errors="replace"))
        if not (ROOT / path).exists()
    }
    assert missing == set()


def test_no_comment_cites_a_document_we_do_not_have():
    foreign = re.compile(r"\b(DECISIONS|PLATFORM-NOTES|ARCHITECTURE)\b")
    offenders = [
        name
        for name in tracked_files()
        if not name.startswith("docs/") and foreign.search((ROOT / name).read_text(errors="replace"))
    ]
    assert offenders == []
