"""The `.env` loader of the configuration contract (docs/protocol/config.md §4).

The grammar is test-pinned upstream, so it is implemented here exactly rather than with a general dotenv library
(which differs on quotes, escapes and inline comments).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path


class DotenvError(Exception):
    """A `.env` file exists but cannot be read or has a malformed line."""


def parse_line(line: str) -> tuple[str, str] | None:
    """Parse one line; return `(key, value)`, or None for a blank or comment line.

    Raises ValueError for a malformed line.
    """
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    if line.startswith("export "):
        line = line[len("export ") :]
    eq = line.find("=")
    if eq <= 0:
        raise ValueError("malformed line, expected KEY=VALUE")
    key = line[:eq].strip()
    value = line[eq + 1 :].strip()
    if not key:
        raise ValueError("malformed line, expected KEY=VALUE")
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return key, value[1:-1]
    comment = value.find(" #")
    if comment >= 0:
        value = value[:comment].strip()
    return key, value


def parse(text: str, path: str = ".env") -> dict[str, str]:
    """Parse a whole file's text into an ordered mapping (a later duplicate key wins)."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            parsed = parse_line(line)
        except ValueError as exc:
            raise DotenvError(f"dotenv: {path}:{number}: {exc}") from None
        if parsed is not None:
            values[parsed[0]] = parsed[1]
    return values


def resolve_path(environ: MutableMapping[str, str]) -> Path | None:
    """Where `.env` is read from: `DOTENV_PATH`, `.env` in the working directory by default, None when `-`."""
    configured = environ.get("DOTENV_PATH", "").strip()
    if configured == "-":
        return None
    return Path(configured or ".env")


def load(environ: MutableMapping[str, str]) -> list[str]:
    """Apply the `.env` file to `environ`, never overwriting a key that is already present (even if empty).

    Returns the keys it set. A missing file is skipped silently; an unreadable or malformed one raises DotenvError.
    """
    path = resolve_path(environ)
    if path is None:
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise DotenvError(f"dotenv: {path}: {exc.__class__.__name__}: cannot read file") from None
    applied = []
    for key, value in parse(text, str(path)).items():
        if key not in environ:
            environ[key] = value
            applied.append(key)
    return applied


def load_process_environment() -> list[str]:
    """Apply `.env` to this process's environment (`os.environ`)."""
    return load(os.environ)
