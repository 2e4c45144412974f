"""Scope normalisation (docs/protocol/decisions.md O1): keep what the gateway supports, drop the rest, default to
`profile email`."""

from __future__ import annotations

SUPPORTED_SCOPES = ("profile", "email", "device", "offline_access")
DEFAULT_SCOPE = "profile email"


def normalize_scope(requested: str) -> str:
    """Supported scopes in the order asked (duplicates kept, as upstream); unknown and legacy names are dropped
    silently (`openid`, `read_assets`, `write_assets`, `gateway:session`, `gateway:share`, ...). When nothing
    supported remains, the default `profile email` is granted."""
    kept = [scope for scope in requested.split() if scope in SUPPORTED_SCOPES]
    return " ".join(kept) if kept else DEFAULT_SCOPE


def client_credentials_scope(requested: str) -> str:
    """client_credentials (demo) echoes the requested scope and always carries `device` (docs/protocol/decisions.md
    O1)."""
    requested = requested.strip()
    if "device" in requested.split():
        return requested
    return f"{requested} device".strip()
