"""Identifiers: the grammar shared by devices, sessions and shares (trimmed, 3-128 of `[A-Za-z0-9_.:-]`), emails, and
the ids of this process's sockets."""

from __future__ import annotations

import itertools
import re

from gateway_site.errors import BadRequest

ID_RE = re.compile(r"[A-Za-z0-9_.:\-]{3,128}")


def is_valid_id(value: str) -> bool:
    return bool(ID_RE.fullmatch(value.strip()))


def validate_id(value: object, label: str) -> str:
    """The trimmed id, or BadRequest(`<label> is required` / `invalid <label>`)."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise BadRequest(f"{label} is required")
    if not ID_RE.fullmatch(text):
        raise BadRequest(f"invalid {label}")
    return text


# Every stored email column holds this many characters; a longer one counts as no email (the same on every database).
EMAIL_MAX_LENGTH = 320


def canonical_email(value: object) -> str:
    """Lowercased and trimmed, with exactly one `@` and non-empty parts; otherwise '' (no email)."""
    if not isinstance(value, str):
        return ""
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or not domain or "@" in domain or len(email) > EMAIL_MAX_LENGTH:
        return ""
    return email


_connection_ids = itertools.count(1)


def next_connection_id(prefix: str = "agt") -> str:
    """`<prefix>:<n>` from one process-wide counter shared by agent (`agt`) and tunnel (`tun`) sockets."""
    return f"{prefix}:{next(_connection_ids)}"
