"""The encrypted-frame envelope rule shared by client messages and agent frames (docs/protocol/relay.md §4.4).

Exact JSON types matter: in Python `True == 1`, so `encrypted` must be the boolean itself and `seq` a number that
is not a boolean.
"""

from __future__ import annotations

from typing import Any

MAX_SEQ = 2**63 - 1
MAX_FLOAT_SEQ = 2.0**53


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def parse_seq(value: Any) -> int | None:
    """A JSON number with an integral value >= 1 (`1` and `1.0` pass; strings, booleans, 0 and 1.5 fail)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= MAX_SEQ else None
    if isinstance(value, float) and value.is_integer() and 1 <= value <= MAX_FLOAT_SEQ:
        return int(value)
    return None


def violation(frame: dict[str, Any]) -> str | None:
    """The first broken rule, or None for a valid envelope."""
    if frame.get("encrypted") is not True:
        return "missing_encrypted_flag"
    if not _nonempty_str(frame.get("ciphertext")):
        return "missing_ciphertext"
    if not _nonempty_str(frame.get("nonce")):
        return "missing_nonce"
    if not _nonempty_str(frame.get("tag")):
        return "missing_tag"
    if "seq" not in frame:
        return "missing_seq"
    if parse_seq(frame["seq"]) is None:
        return "invalid_seq"
    return None
