"""Django settings: every knob comes from the environment contract in `gateway_site.config`.

A bad value stops the process here with one line naming the variable and the rule, before anything listens.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys
from pathlib import Path

from gateway_site import dotenv, state_backends
from gateway_site.config import ConfigError, GatewayConfig, load_config, origin_pattern


def _load() -> GatewayConfig:
    try:
        dotenv.load_process_environment()
        return load_config(os.environ)
    except (ConfigError, dotenv.DotenvError) as exc:
        # One line, no traceback: this is an operator's mistake, not a crash.
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(1) from None


GATEWAY = _load()

BASE_DIR = Path(__file__).resolve().parent.parent

# Django's own secret is derived from JWT_SIGNING_KEY, so operators manage one secret only.
SECRET_KEY = hmac.new(GATEWAY.jwt_signing_key.encode(), b"django-secret-key", hashlib.sha256).hexdigest()
DEBUG = GATEWAY.debug
# Absolute URLs are always built from PUBLIC_BASE_URL, never from the Host header; restrict with ALLOWED_HOSTS.
ALLOWED_HOSTS = list(GATEWAY.allowed_hosts)

INSTALLED_APPS = [
    # gateway_site first: its `runserver` (Daphne's, with our port default) wins over the one of `daphne`.
    "gateway_site",
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "corsheaders",
    "channels",
    "oauth2_provider",
    "oauthapp",
    "relay",
    "shares",
    "tunnels",
    "console",
]

MIDDLEWARE = [
    "gateway_site.middleware.GatewayCorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "gateway_site.auth.BearerAuthMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "gateway_site.middleware.ApiErrorMiddleware",
]

ROOT_URLCONF = "gateway_site.urls"
ASGI_APPLICATION = "gateway_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Templates live in their apps (`<app>/templates/`), so the installed package carries them.
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ],
        },
    },
]

DATABASES = {"default": GATEWAY.database}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "oauthapp.User"
# Migrations are applied at start-up only for the in-memory database (nothing else would ever create its tables).
GATEWAY_AUTO_MIGRATE = GATEWAY.database_in_memory

# Django's own cache only: the gateway's ephemeral state lives in its stores (GATEWAY_*_STORE below, docs/scaling.md).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "default"}}

CHANNEL_LAYERS = state_backends.channel_layers(GATEWAY.state_backend, GATEWAY.redis_url)

# Request bodies: 4 MiB like the upstream framework (docs/protocol/system-and-console.md §1.2); the ASGI body limit
# enforces it before Django reads anything, this keeps Django's own check consistent.
GATEWAY_MAX_BODY_BYTES = 4 * 1024 * 1024
# Webhook ingress allows routes up to 5 MiB (each route's own max_body_bytes is checked by the ingress view).
GATEWAY_MAX_INGRESS_BODY_BYTES = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = GATEWAY_MAX_INGRESS_BODY_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = GATEWAY_MAX_INGRESS_BODY_BYTES

# The public clients treat any redirect on an API call as a failure (docs/protocol/decisions.md K1).
APPEND_SLASH = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# CORS (docs/protocol/config.md §7) through django-cors-headers; GatewayCorsMiddleware adds the spec's preflight
# details.
CORS_ALLOW_ALL_ORIGINS = "*" in GATEWAY.allow_origins
CORS_ALLOW_CREDENTIALS = not CORS_ALLOW_ALL_ORIGINS
CORS_ALLOWED_ORIGINS: list[str] = []
CORS_ALLOWED_ORIGIN_REGEXES = [origin_pattern(o) for o in GATEWAY.allow_origins if o != "*"]
CORS_ALLOW_METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS"]
CORS_ALLOW_HEADERS = [
    "Origin",
    "Content-Type",
    "Accept",
    "Authorization",
    "Cache-Control",
    "Last-Event-ID",
    "X-Idempotency-Key",
]
CORS_PREFLIGHT_MAX_AGE = 0
# The operator console and its API are same-origin only: no CORS headers there, whatever ALLOW_ORIGINS says, so no
# other origin can read an operator answer or send the operator CSRF header (docs/operations.md).
CORS_URLS_REGEX = r"^(?!/console/operator(/|$)).*$"

# Security headers. Behind a TLS-terminating proxy the public base URL is https and the proxy says so.
if GATEWAY.public_base_is_https:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = [GATEWAY.public_base_url]
CSRF_FAILURE_VIEW = "gateway_site.views.csrf_failure"
SILENCED_SYSTEM_CHECKS = [
    # No SECURE_SSL_REDIRECT: TLS is terminated (and http redirected) by the proxy in front; the app itself must
    # never redirect an API call (docs/protocol/decisions.md K1) and the platform's health probe speaks plain http.
    "security.W008",
    # HSTS preload is a commitment for the whole domain that an operator makes on purpose, not a default.
    "security.W021",
    # Plain-http redirect URIs stay allowed: native apps receive codes on http loopback ports (RFC 8252), and both
    # public clients depend on it (docs/protocol/oauth.md §3.6).
    "oauth2_provider.W008",
]

# Providers of the per-caller and node-wide counters of GET /gateway/v1/health (gateway_site.health).
GATEWAY_HEALTH_PROVIDERS: list[str] = [
    "relay.services.health_counts",
    "relay.sessions.health_counts",
    "tunnels.services.health_counts",
    "shares.services.health_counts",
]
# Providers of the live gauges of /metrics (gateway_site.metrics.LIVE_GAUGES): callables, sync or async, taking nothing
# and returning some of its keys.
GATEWAY_METRICS_PROVIDERS: list[str] = [
    "relay.services.metrics_gauges",
    "relay.sessions.metrics_gauges",
    "tunnels.services.metrics_gauges",
]
# Ephemeral state, by store, in this process or in Redis for several processes (gateway_site.state_backends):
# sessions (relay.session_store), device presence (relay.stores.PresenceStore), stores of caller-chosen keys such as
# rate-limit windows, route snapshots and operator token ids (gateway_site.kvstore), and the caps of
# docs/protocol/decisions.md H3 that hold per user, owner or route, not per process (gateway_site.leases).
_STORES = state_backends.STORES[GATEWAY.state_backend]
GATEWAY_SESSION_STORE = _STORES["GATEWAY_SESSION_STORE"]
GATEWAY_PRESENCE_STORE = _STORES["GATEWAY_PRESENCE_STORE"]
GATEWAY_KEY_VALUE_STORE = _STORES["GATEWAY_KEY_VALUE_STORE"]
GATEWAY_LEASES = _STORES["GATEWAY_LEASES"]
# Who else may use a device: the sharing app's grants (relay.access asks this source; the relay never imports shares).
GATEWAY_GRANT_SOURCE = "shares.permissions.ShareGrants"
# App code the ASGI router reaches by import string, so that gateway_site imports no app (gateway_site.routing).
GATEWAY_STREAM_ROUTES = ["relay.routing.stream_urlpatterns", "tunnels.routing.stream_urlpatterns"]
# Webhooks are recorded for the request inspector (docs/protocol/webhooks.md §2); only the benchmark's A/B
# (bench/inspector_ab.py, through bench/settings_no_inspector.py) turns it off, to measure what recording costs.
GATEWAY_INSPECTOR_ENABLED = True
GATEWAY_WEBSOCKET_ROUTES = ["relay.routing.websocket_urlpatterns", "tunnels.routing.websocket_urlpatterns"]
# POST …/messages served ahead of Django: (path pattern, handler(scope, receive, send, session_id)).
GATEWAY_MESSAGES_ROUTE = ("relay.fastpath.PATH", "relay.fastpath.messages")
# Webhook ingress under /integrations/: (path pattern, handler(scope, receive, send, route_id, route_token), and the
# answer for any other path shape there, not_found(scope, send)).
GATEWAY_INGRESS_ROUTE = ("tunnels.ingress.PATH", "tunnels.ingress.ingress", "tunnels.ingress.not_found")
# Run once at start-up, before serving (gateway_site.boot); a hook raises boot.StartupFailed to stop the process.
GATEWAY_STARTUP_CHECKS = ["oauthapp.verifiers.startup_check"]

# Device events streams re-check visibility and presence at least this often (docs/protocol/devices-and-shares.md §7).
GATEWAY_DEVICE_EVENTS_WAKE_SECONDS = 30
# Session events streams send a heartbeat and re-check access this often (docs/protocol/relay.md §4.5).
GATEWAY_SESSION_HEARTBEAT_SECONDS = 15

# Where Firebase publishes the keys that sign its ID tokens (a setting so tests can serve their own).
GATEWAY_FIREBASE_JWKS_URL = "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"

# django-oauth-toolkit: the issue/verification details are configured by the OAuth app.
OAUTH2_PROVIDER: dict[str, object] = {
    "PKCE_REQUIRED": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "gateway": {"()": "gateway_site.logging.GatewayFormatter", "fmt": GATEWAY.log_format},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "gateway", "stream": "ext://sys.stderr"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "gateway": {"handlers": ["console"], "level": GATEWAY.log_level, "propagate": False},
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        # Django logs every 4xx/5xx with the full path (query strings carry codes and tokens); we log requests
        # ourselves with redaction, and server errors through gateway.errors.
        "django.request": {"handlers": ["console"], "level": "CRITICAL", "propagate": False},
        "daphne": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
