"""The gateway's environment contract (docs/protocol/config.md, amended by docs/protocol/decisions.md): parse, derive,
validate.

`load_config(environ)` is pure: it reads the given mapping and returns a frozen `GatewayConfig`, or raises
`ConfigError` whose message is the one line printed at start-up. `settings.py` turns the result into Django settings.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import os
import re
import socket
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import environ

OOB_REDIRECT_URI = "urn:ietf:wg:oauth:2.0:oob"
DEFAULT_REDIRECT_ALLOWLIST = (
    "http://localhost:61696/callback",
    "http://localhost:3000/callback",
    OOB_REDIRECT_URI,
)
MEMORY_DATABASE_NAME = "file:/gateway?vfs=memdb"
AUTH_MODES = ("demo", "firebase", "oidc")
TRANSPORT_TOKEN_MODES = ("optional", "required")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
REDIS_SCHEMES = ("redis", "rediss", "unix")
STATE_BACKENDS = ("memory", "redis")

# Every variable the contract reads (docs/protocol/config.md §3 plus our additions), for .env.example and the tests.
VARIABLES = (
    "PORT",
    "PUBLIC_BASE_URL",
    "RAILWAY_PUBLIC_DOMAIN",
    "ALLOW_ORIGINS",
    "REDIRECT_ALLOWLIST",
    "OAUTH_REDIRECT_URIS",
    "OAUTH_DEFAULT_CLIENT_ID",
    "OAUTH_CLIENT_NAME",
    "FRONTEND_URL",
    "NODE_ID",
    "JWT_SIGNING_KEY",
    "JWT_AUDIENCE",
    "ACCESS_TOKEN_TTL_SECONDS",
    "AUTH_CODE_TTL_SECONDS",
    "REFRESH_TOKEN_TTL_SECONDS",
    "DEMO_TOKEN_TTL_SECONDS",
    "STATE_BACKEND",
    "AUTH_MODE",
    "DEMO_AUTH_DISABLED",
    "PROXY_HEADER",
    "INGRESS_RATE_WINDOW_SECONDS",
    "INGRESS_GLOBAL_LIMIT_PER_WINDOW",
    "INGRESS_IP_LIMIT_PER_WINDOW",
    "INGRESS_ROUTE_LIMIT_PER_WINDOW",
    "IDEMPOTENCY_TTL_SECONDS",
    "REQUIRE_ENCRYPTED_FRAMES",
    "TRANSPORT_TOKEN_SECRET",
    "TRANSPORT_TOKEN_TTL_SECONDS",
    "TRANSPORT_TOKEN_MODE",
    "FIREBASE_PROJECT_ID",
    "FIREBASE_CREDENTIALS_PATH",
    "FIREBASE_API_KEY",
    "OIDC_ISSUER_URL",
    "OIDC_CLIENT_ID",
    "DOTENV_PATH",
    "DATABASE_URL",
    "REDIS_URL",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "DJANGO_DEBUG",
    "ALLOWED_HOSTS",
    "INGRESS_BASE_URL",
    "PROXY_TRUSTED_HOPS",
    "MAX_SESSIONS_PER_DEVICE",
    "MAX_STREAMS_PER_USER",
    "MAX_PENDING_INVITES_PER_DEVICE",
    "MAX_INFLIGHT_PER_ROUTE",
    "MAX_INFLIGHT_PER_OWNER",
    "SESSION_BACKLOG_BYTES",
    "STREAM_BUFFER_BYTES",
    "SHUTDOWN_TIMEOUT_SECONDS",
    "SHUTDOWN_DRAIN_SECONDS",
    "WEB_CONCURRENCY",
    "METRICS_TOKEN",
    "METRICS_ENABLED",
    "OPERATOR_EMAILS",
)

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_INT_RE = re.compile(r"^[+-]?[0-9]+$")
# A bearer token a scraper can send as is: visible ASCII, no spaces (docs/operations.md).
_METRICS_TOKEN_RE = re.compile(r"^[\x21-\x7e]+$")
METRICS_TOKEN_MIN_LENGTH = 16


# The OAuth client's id and name are stored in django-oauth-toolkit's Application (255 characters each).
OAUTH_STORED_MAX_LENGTH = 255


class ConfigError(Exception):
    """A configuration value breaks a rule; the message names the variable and the rule."""


@dataclass(frozen=True)
class GatewayConfig:
    """Every configuration value after parsing, derivation and validation."""

    port: int
    public_base_url: str
    allow_origins: tuple[str, ...]
    redirect_allowlist: tuple[str, ...]
    oauth_redirect_uris: tuple[str, ...]
    oauth_default_client_id: str
    oauth_client_name: str
    frontend_url: str
    node_id: str
    jwt_signing_key: str = field(repr=False)
    jwt_audience: str
    access_token_ttl_seconds: int
    auth_code_ttl_seconds: int
    refresh_token_ttl_seconds: int
    demo_token_ttl_seconds: int
    state_backend: str
    auth_mode: str
    demo_auth_disabled: bool
    proxy_header: str
    ingress_rate_window_seconds: int
    ingress_global_limit_per_window: int
    ingress_ip_limit_per_window: int
    ingress_route_limit_per_window: int
    idempotency_ttl_seconds: int
    require_encrypted_frames: bool
    transport_token_secret: str = field(repr=False)
    transport_token_ttl_seconds: int
    transport_token_mode: str
    firebase_project_id: str
    firebase_credentials_path: str
    firebase_api_key: str
    oidc_issuer_url: str
    oidc_client_id: str
    database_url: str
    database: dict[str, Any] = field(repr=False)
    redis_url: str = field(repr=False)
    log_format: str
    log_level: str
    debug: bool
    allowed_hosts: tuple[str, ...]
    ingress_base_url: str = ""
    proxy_trusted_hops: int = 1
    max_sessions_per_device: int = 100
    max_streams_per_user: int = 32
    max_pending_invites_per_device: int = 50
    max_inflight_per_route: int = 64
    max_inflight_per_owner: int = 256
    session_backlog_bytes: int = 8 * 1024 * 1024
    stream_buffer_bytes: int = 4 * 1024 * 1024
    shutdown_timeout_seconds: int = 10
    shutdown_drain_seconds: int = 0
    web_concurrency: int = 1
    metrics_token: str = field(default="", repr=False)
    metrics_enabled: bool = True
    # Verified emails whose users may open the operator console (oidc/firebase modes only; docs/operations.md).
    operator_emails: tuple[str, ...] = ()

    @property
    def database_in_memory(self) -> bool:
        return self.database.get("NAME") == MEMORY_DATABASE_NAME

    @property
    def public_base_is_https(self) -> bool:
        return self.public_base_url.lower().startswith("https://")

    @property
    def ingress_url(self) -> str:
        """Where webhook URLs point: INGRESS_BASE_URL when set, else PUBLIC_BASE_URL."""
        return self.ingress_base_url or self.public_base_url

    @property
    def ingress_host(self) -> str:
        """The host that serves ingress only (lower case, no port), or "" when ingress shares the public host."""
        return (urlsplit(self.ingress_base_url).hostname or "").lower() if self.ingress_base_url else ""

    @property
    def console_url(self) -> str:
        return self.public_base_url + "/console"


class _Reader:
    """Reads raw strings through django-environ and applies the contract's parsing helpers (docs/protocol/config.md
    §2)."""

    def __init__(self, environ_map: Mapping[str, str]) -> None:
        self._env = environ.Env()
        # django-environ reads `ENVIRON`; point it at the mapping we were given so parsing stays pure.
        self._env.ENVIRON = environ_map

    def string(self, name: str, default: str = "") -> str:
        value = str(self._env.str(name, default="")).strip()
        return value or default

    def lower(self, name: str, default: str = "") -> str:
        return self.string(name, default).lower()

    def csv(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        items = tuple(item.strip() for item in self.string(name).split(","))
        items = tuple(item for item in items if item)
        return items or default

    def seconds(self, name: str, default: int) -> int:
        """Unparsable, zero or negative silently means the default; no upper bound."""
        raw = self.string(name)
        if not _INT_RE.match(raw):
            return default
        value = int(raw)
        return value if value > 0 else default

    def bounded(self, name: str, default: int, low: int, high: int) -> int:
        """Unparsable means the default; out-of-range values are clamped."""
        raw = self.string(name)
        if not _INT_RE.match(raw):
            return default
        return min(max(int(raw), low), high)

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.string(name)
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        return default

    def database(self, name: str) -> tuple[str, dict[str, Any]]:
        raw = self.string(name)
        if not raw:
            return "", memory_database()
        try:
            with warnings.catch_warnings():
                # django-environ warns about an unknown scheme; we report it as our one-line error instead.
                warnings.simplefilter("ignore")
                parsed = self._env.db_url_config(raw)
        except Exception:  # django-environ raises several types for a bad URL
            raise ConfigError(f"{name} is not a valid database URL") from None
        if not parsed.get("ENGINE"):
            raise ConfigError(f"{name} is not a valid database URL")
        if parsed["ENGINE"] == "django.db.backends.sqlite3":
            # As for the in-memory database: one writer at a time, others wait (several processes may share a file).
            parsed["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20, **parsed.get("OPTIONS", {})}
        return raw, dict(parsed)


def is_memory_database(name: str) -> bool:
    """A SQLite database that lives inside one process (the default, `sqlite://:memory:`, a memdb or
    mode=memory URI)."""
    return name in ("", ":memory:", MEMORY_DATABASE_NAME) or "vfs=memdb" in name or "mode=memory" in name


def memory_database() -> dict[str, Any]:
    """The process-wide in-memory SQLite database (docs/platform-notes.md §2).

    memdb with a `/` name is shared by every connection of the process; IMMEDIATE transactions plus a busy timeout
    make concurrent writers wait instead of failing with `database is locked`.
    """
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": MEMORY_DATABASE_NAME,
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        "TEST": {"NAME": "file:/gateway_test?vfs=memdb"},
    }


def derive_transport_secret(signing_key: str) -> str:
    """docs/protocol/config.md §1 step 3.2: the default transport-token secret."""
    return hmac.new(signing_key.encode(), b"transport-token-secret", hashlib.sha256).hexdigest()


def derive_public_base_url(configured: str, railway_domain: str, port: int | str) -> str:
    """docs/protocol/config.md §5: explicit value (trailing `/` removed), else Railway's domain, else localhost."""
    if configured:
        return configured.rstrip("/")
    if railway_domain:
        return f"https://{railway_domain}".rstrip("/")
    return f"http://localhost:{port}"


def _check_shared_state(redis_url: str, database: Mapping[str, Any], *, public_base_url_set: bool) -> None:
    """STATE_BACKEND=redis: the processes share Redis and one database, the drivers are installed, and they all
    have one public address: it is the issuer of every token, so a token one process issues must name the address
    the others accept (docs/scaling.md)."""
    if not redis_url:
        raise ConfigError("REDIS_URL is required when STATE_BACKEND=redis")
    if not public_base_url_set:
        raise ConfigError(
            "PUBLIC_BASE_URL is required when STATE_BACKEND=redis (every process must issue tokens for one address)"
        )
    if database.get("ENGINE") == "django.db.backends.sqlite3" and is_memory_database(str(database.get("NAME", ""))):
        raise ConfigError(
            "DATABASE_URL must name a database every process shares when STATE_BACKEND=redis "
            "(postgres://… or a SQLite file)"
        )
    missing = [name for name in ("redis", "channels_redis") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"STATE_BACKEND=redis needs {', '.join(missing)} (pip install '.[redis]')")


def default_node_id() -> str:
    try:
        host = socket.gethostname().strip() or "node"
    except OSError:
        host = "node"
    return f"{host}-{os.getpid()}"


_ORIGIN_RE = re.compile(r"^[a-z][a-z0-9+.-]*://(\*\.)?[a-z0-9.\-\[\]:]+/?$")


def validate_origin(entry: str) -> str:
    """docs/protocol/config.md §7 entry syntax; returns the normalised (lowercase, no trailing `/`) entry or raises
    ValueError."""
    if entry == "*":
        return entry
    lowered = entry.lower()
    if not _ORIGIN_RE.match(lowered):
        raise ValueError(entry)
    parts = urlsplit(lowered.replace("*.", "wildcard.", 1))
    if parts.username or parts.password or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(entry)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(entry) from None
    if not parts.hostname:
        raise ValueError(entry)
    return lowered.rstrip("/")


def origin_pattern(entry: str) -> re.Pattern[str]:
    """A normalised ALLOW_ORIGINS entry as a case-insensitive pattern; `scheme://*.domain` matches subdomains."""
    pattern = re.escape(entry).replace(re.escape("*."), "[^/]+\\.", 1)
    return re.compile(f"^{pattern}$", re.IGNORECASE)


def load_config(environ_map: Mapping[str, str]) -> GatewayConfig:
    """Parse, derive and validate the configuration from `environ_map` (docs/protocol/config.md §1).

    Raises ConfigError with the first failing rule's message (docs/protocol/config.md §6 order, then our additions).
    """
    read = _Reader(environ_map)

    port_raw = read.string("PORT", "8080")
    allowlist = read.csv("REDIRECT_ALLOWLIST", DEFAULT_REDIRECT_ALLOWLIST)
    redirect_uris = read.csv("OAUTH_REDIRECT_URIS", allowlist)
    signing_key = read.string("JWT_SIGNING_KEY")
    transport_secret = read.string("TRANSPORT_TOKEN_SECRET") or (
        derive_transport_secret(signing_key) if signing_key else ""
    )
    public_base_url = derive_public_base_url(
        read.string("PUBLIC_BASE_URL"), read.string("RAILWAY_PUBLIC_DOMAIN"), port_raw
    )
    console_url = public_base_url + "/console"
    if console_url not in allowlist:
        allowlist = (*allowlist, console_url)
    node_id = read.string("NODE_ID") or default_node_id()

    state_backend = read.lower("STATE_BACKEND", "memory")
    auth_mode = read.lower("AUTH_MODE", "demo")
    demo_auth_disabled = read.boolean("DEMO_AUTH_DISABLED", False)
    transport_ttl = read.seconds("TRANSPORT_TOKEN_TTL_SECONDS", 3600)
    firebase_project_id = read.string("FIREBASE_PROJECT_ID")
    oidc_issuer_url = read.string("OIDC_ISSUER_URL")
    oidc_client_id = read.string("OIDC_CLIENT_ID")

    # docs/protocol/config.md §6, first failure wins. Rows 3, 5-7 and 9-11 cannot fail after defaulting and clamping.
    if not signing_key:
        raise ConfigError("JWT_SIGNING_KEY is required")
    if len(signing_key.encode("utf-8")) < 32:
        raise ConfigError("JWT_SIGNING_KEY must be at least 32 bytes")
    if state_backend not in STATE_BACKENDS:
        raise ConfigError(f'unsupported STATE_BACKEND="{state_backend}" (use "memory" or "redis")')
    if transport_ttl < 30:
        raise ConfigError("TRANSPORT_TOKEN_TTL_SECONDS must be >= 30 (renewal happens at TTL/2)")
    if auth_mode == "demo" and demo_auth_disabled:
        raise ConfigError("AUTH_MODE=demo but DEMO_AUTH_DISABLED=true")
    if auth_mode == "firebase" and not firebase_project_id:
        raise ConfigError("FIREBASE_PROJECT_ID is required when AUTH_MODE=firebase")
    if auth_mode == "oidc" and not (oidc_issuer_url and oidc_client_id):
        raise ConfigError("OIDC_ISSUER_URL and OIDC_CLIENT_ID are required when AUTH_MODE=oidc")
    if auth_mode not in AUTH_MODES:
        raise ConfigError(f'unsupported AUTH_MODE="{auth_mode}"')

    allow_origins = read.csv("ALLOW_ORIGINS", ("*",))
    normalised_origins = []
    for entry in allow_origins:
        try:
            normalised_origins.append(validate_origin(entry))
        except ValueError:
            raise ConfigError(
                f'ALLOW_ORIGINS entry "{entry}" is not a valid origin '
                "(use *, scheme://host[:port] or scheme://*.domain)"
            ) from None

    # Our additions to the contract, validated after the spec's rows.
    if not _INT_RE.match(port_raw) or not 1 <= int(port_raw) <= 65535:
        raise ConfigError("PORT must be an integer between 1 and 65535")
    for name, default in (("OAUTH_DEFAULT_CLIENT_ID", "commands-agent"), ("OAUTH_CLIENT_NAME", "Commands.com Gateway")):
        if len(read.string(name, default)) > OAUTH_STORED_MAX_LENGTH:  # stored in the OAuth application row
            raise ConfigError(f"{name} must be at most {OAUTH_STORED_MAX_LENGTH} characters")
    transport_mode = read.lower("TRANSPORT_TOKEN_MODE", "optional")
    if transport_mode not in TRANSPORT_TOKEN_MODES:
        raise ConfigError(f'unsupported TRANSPORT_TOKEN_MODE="{transport_mode}" (use "optional" or "required")')
    database_url, database = read.database("DATABASE_URL")
    if database.get("ENGINE") == "django.db.backends.postgresql" and importlib.util.find_spec("psycopg") is None:
        raise ConfigError("DATABASE_URL is a PostgreSQL URL but psycopg is not installed (pip install '.[postgres]')")
    redis_url = read.string("REDIS_URL")
    if redis_url and urlsplit(redis_url).scheme not in REDIS_SCHEMES:
        raise ConfigError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
    if state_backend == "redis":
        _check_shared_state(
            redis_url,
            database,
            public_base_url_set=bool(read.string("PUBLIC_BASE_URL") or read.string("RAILWAY_PUBLIC_DOMAIN")),
        )
    log_format = read.lower("LOG_FORMAT", "text")
    if log_format not in LOG_FORMATS:
        raise ConfigError('LOG_FORMAT must be "text" or "json"')
    log_level = read.string("LOG_LEVEL", "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise ConfigError("LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    if not public_base_url.lower().startswith(("http://", "https://")):
        raise ConfigError("PUBLIC_BASE_URL must start with http:// or https://")
    ingress_base_url = read.string("INGRESS_BASE_URL").rstrip("/")
    if ingress_base_url:
        parts = urlsplit(ingress_base_url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            raise ConfigError("INGRESS_BASE_URL must be an http:// or https:// origin (scheme, host, optional port)")
        if parts.hostname.lower() == (urlsplit(public_base_url).hostname or "").lower():
            raise ConfigError("INGRESS_BASE_URL must name a host other than PUBLIC_BASE_URL's")
    metrics_token = read.string("METRICS_TOKEN")
    if metrics_token and (len(metrics_token) < METRICS_TOKEN_MIN_LENGTH or not _METRICS_TOKEN_RE.match(metrics_token)):
        raise ConfigError(
            f"METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_LENGTH} characters of visible ASCII, without spaces"
        )

    operator_emails = []
    for entry in read.csv("OPERATOR_EMAILS", ()):
        email = entry.lower()
        local, at, domain = email.partition("@")
        if not (at and local and domain) or "@" in domain or any(c.isspace() for c in email) or len(email) > 320:
            raise ConfigError(f'OPERATOR_EMAILS entry "{entry}" is not an email address')
        operator_emails.append(email)

    return GatewayConfig(
        port=int(port_raw),
        public_base_url=public_base_url,
        allow_origins=tuple(normalised_origins),
        redirect_allowlist=allowlist,
        oauth_redirect_uris=redirect_uris,
        oauth_default_client_id=read.string("OAUTH_DEFAULT_CLIENT_ID", "commands-agent"),
        oauth_client_name=read.string("OAUTH_CLIENT_NAME", "Commands.com Gateway"),
        frontend_url=read.string("FRONTEND_URL", "https://example.com"),
        node_id=node_id,
        jwt_signing_key=signing_key,
        jwt_audience=read.string("JWT_AUDIENCE", "commands-gateway"),
        access_token_ttl_seconds=read.seconds("ACCESS_TOKEN_TTL_SECONDS", 3600),
        auth_code_ttl_seconds=read.seconds("AUTH_CODE_TTL_SECONDS", 300),
        refresh_token_ttl_seconds=read.seconds("REFRESH_TOKEN_TTL_SECONDS", 2592000),
        demo_token_ttl_seconds=read.seconds("DEMO_TOKEN_TTL_SECONDS", 3600),
        state_backend=state_backend,
        auth_mode=auth_mode,
        demo_auth_disabled=demo_auth_disabled,
        proxy_header=read.string("PROXY_HEADER"),
        ingress_rate_window_seconds=read.bounded("INGRESS_RATE_WINDOW_SECONDS", 60, 1, 3600),
        ingress_global_limit_per_window=read.bounded("INGRESS_GLOBAL_LIMIT_PER_WINDOW", 3000, 1, 1000000),
        ingress_ip_limit_per_window=read.bounded("INGRESS_IP_LIMIT_PER_WINDOW", 600, 1, 100000),
        ingress_route_limit_per_window=read.bounded("INGRESS_ROUTE_LIMIT_PER_WINDOW", 300, 1, 100000),
        idempotency_ttl_seconds=read.bounded("IDEMPOTENCY_TTL_SECONDS", 300, 30, 86400),
        require_encrypted_frames=read.boolean("REQUIRE_ENCRYPTED_FRAMES", True),
        transport_token_secret=transport_secret,
        transport_token_ttl_seconds=transport_ttl,
        transport_token_mode=transport_mode,
        firebase_project_id=firebase_project_id,
        firebase_credentials_path=read.string("FIREBASE_CREDENTIALS_PATH"),
        firebase_api_key=read.string("FIREBASE_API_KEY"),
        oidc_issuer_url=oidc_issuer_url,
        oidc_client_id=oidc_client_id,
        database_url=database_url,
        database=database,
        redis_url=redis_url,
        log_format=log_format,
        log_level=log_level,
        debug=read.boolean("DJANGO_DEBUG", False),
        allowed_hosts=read.csv("ALLOWED_HOSTS", ("*",)),
        ingress_base_url=ingress_base_url,
        proxy_trusted_hops=read.bounded("PROXY_TRUSTED_HOPS", 1, 1, 10),
        max_sessions_per_device=read.bounded("MAX_SESSIONS_PER_DEVICE", 100, 1, 100_000),
        max_streams_per_user=read.bounded("MAX_STREAMS_PER_USER", 32, 1, 100_000),
        max_pending_invites_per_device=read.bounded("MAX_PENDING_INVITES_PER_DEVICE", 50, 1, 100_000),
        max_inflight_per_route=read.bounded("MAX_INFLIGHT_PER_ROUTE", 64, 1, 100_000),
        max_inflight_per_owner=read.bounded("MAX_INFLIGHT_PER_OWNER", 256, 1, 100_000),
        session_backlog_bytes=read.bounded("SESSION_BACKLOG_BYTES", 8 * 1024 * 1024, 64 * 1024, 1024**3),
        stream_buffer_bytes=read.bounded("STREAM_BUFFER_BYTES", 4 * 1024 * 1024, 64 * 1024, 1024**3),
        shutdown_timeout_seconds=read.bounded("SHUTDOWN_TIMEOUT_SECONDS", 10, 1, 300),
        shutdown_drain_seconds=read.bounded("SHUTDOWN_DRAIN_SECONDS", 0, 0, 300),
        web_concurrency=read.bounded("WEB_CONCURRENCY", 1, 1, 1024),
        metrics_token=metrics_token,
        metrics_enabled=read.boolean("METRICS_ENABLED", True),
        operator_emails=tuple(dict.fromkeys(operator_emails)),
    )
