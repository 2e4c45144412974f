"""The one JSON parser for untrusted input (decisions.md H9): any failure, including nesting deeper than 64 levels,
is `InvalidJson`, never a RecursionError or another exception that would become a 500 or drop a socket."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class InvalidJson(ValueError):
    pass


def loads(raw: str | bytes) -> Any:
    """Parse `raw` (UTF-8 when bytes); raises InvalidJson for anything that is not JSON within MAX_DEPTH."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError, TypeError):  # UnicodeDecodeError is a ValueError
        raise InvalidJson("invalid json") from None
    # Depth can only pass the limit if the text has more brackets than that (a C-speed count spares the walk).
    brackets = raw.count(b"[") + raw.count(b"{") if isinstance(raw, bytes) else raw.count("[") + raw.count("{")
    if brackets > MAX_DEPTH and depth(data) > MAX_DEPTH:
        raise InvalidJson("json nested too deeply")
    return data


def depth(data: Any) -> int:
    """Nesting depth of parsed JSON (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(data, 1)] if isinstance(data, dict | list) else []
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest
