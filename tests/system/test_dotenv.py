"""`.env` loading (docs/protocol/config.md §4): the pinned line grammar and the precedence of the real environment."""

from __future__ import annotations

import pytest

from gateway_site import dotenv


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('PUBLIC_BASE_URL = "http://localhost:9000"', ("PUBLIC_BASE_URL", "http://localhost:9000")),
        ("QUOTED='single quoted value'", ("QUOTED", "single quoted value")),
        ("WITH_INLINE_COMMENT=plainvalue # trailing comment", ("WITH_INLINE_COMMENT", "plainvalue")),
        ("export EXPORTED_KEY=exported-value", ("EXPORTED_KEY", "exported-value")),
        ("HASH=a#b", ("HASH", "a#b")),
        ('QUOTED_HASH="a # b"', ("QUOTED_HASH", "a # b")),
        ("EMPTY=", ("EMPTY", "")),
        ("EQUALS=a=b", ("EQUALS", "a=b")),
        ("MISMATCHED=\"abc'", ("MISMATCHED", "\"abc'")),
        ('ONE="', ("ONE", '"')),
    ],
)
def test_pinned_line_grammar(line, expected):
    assert dotenv.parse_line(line) == expected


@pytest.mark.parametrize("line", ["", "   ", "# comment", "  # indented comment"])
def test_blank_and_comment_lines_are_skipped(line):
    assert dotenv.parse_line(line) is None


@pytest.mark.parametrize("line", ["not-a-key-value-line", "=value", "  = value"])
def test_malformed_lines_fail_with_path_and_line_number(line):
    with pytest.raises(dotenv.DotenvError) as caught:
        dotenv.parse(f"OK=1\n{line}\n", "conf/.env")
    assert str(caught.value) == "dotenv: conf/.env:2: malformed line, expected KEY=VALUE"


def test_real_environment_wins_even_when_empty(tmp_path):
    path = tmp_path / "gw.env"
    path.write_text("PORT=9000\nAUTH_MODE=oidc\nNEW_KEY=from-file\n")
    environ = {"DOTENV_PATH": str(path), "PORT": "8091", "AUTH_MODE": ""}
    applied = dotenv.load(environ)
    assert applied == ["NEW_KEY"]
    assert environ["PORT"] == "8091"
    assert environ["AUTH_MODE"] == ""
    assert environ["NEW_KEY"] == "from-file"


def test_default_path_is_dotenv_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PORT=9001\n")
    environ: dict[str, str] = {}
    dotenv.load(environ)
    assert environ == {"PORT": "9001"}


def test_dash_disables_loading(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PORT=9001\n")
    environ = {"DOTENV_PATH": "-"}
    assert dotenv.load(environ) == []
    assert "PORT" not in environ


def test_missing_file_is_skipped_silently(tmp_path):
    environ = {"DOTENV_PATH": str(tmp_path / "absent.env")}
    assert dotenv.load(environ) == []


def test_unreadable_file_is_an_error(tmp_path):
    (tmp_path / "bin.env").write_bytes(b"KEY=\xff\xfe\n")
    with pytest.raises(dotenv.DotenvError, match="cannot read file"):
        dotenv.load({"DOTENV_PATH": str(tmp_path / "bin.env")})
