"""The environment contract (docs/protocol/config.md with docs/protocol/decisions.md): defaults, parsing helpers,
derivations, validation."""

from __future__ import annotations

import pytest

from gateway_site.config import MEMORY_DATABASE_NAME, ConfigError, load_config

KEY = "test-signing-secret-at-least-32-bytes-long"


def config(**env: str):
    return load_config({"JWT_SIGNING_KEY": KEY, **env})


def error_of(**env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(env)
    return str(caught.value)


def test_defaults_match_the_contract():
    c = config()
    assert c.port == 8080
    assert c.public_base_url == "http://localhost:8080"
    assert c.allow_origins == ("*",)
    assert c.redirect_allowlist == (
        "http://localhost:61696/callback",
        "http://localhost:3000/callback",
        "urn:ietf:wg:oauth:2.0:oob",
        "http://localhost:8080/console",
    )
    assert c.oauth_redirect_uris == (
        "http://localhost:61696/callback",
        "http://localhost:3000/callback",
        "urn:ietf:wg:oauth:2.0:oob",
    )
    assert c.oauth_default_client_id == "commands-agent"
    assert c.oauth_client_name == "Commands.com Gateway"
    assert c.frontend_url == "https://example.com"
    assert c.jwt_audience == "commands-gateway"
    assert (c.access_token_ttl_seconds, c.auth_code_ttl_seconds) == (3600, 300)
    assert (c.refresh_token_ttl_seconds, c.demo_token_ttl_seconds) == (2592000, 3600)
    assert (c.state_backend, c.auth_mode, c.demo_auth_disabled) == ("memory", "demo", False)
    assert c.proxy_header == ""
    assert c.ingress_rate_window_seconds == 60
    assert (c.ingress_global_limit_per_window, c.ingress_ip_limit_per_window) == (3000, 600)
    assert c.ingress_route_limit_per_window == 300
    assert c.idempotency_ttl_seconds == 300
    assert c.require_encrypted_frames is True
    assert c.transport_token_ttl_seconds == 3600
    assert c.transport_token_mode == "optional"
    assert c.database["NAME"] == MEMORY_DATABASE_NAME and c.database_in_memory
    assert c.redis_url == ""
    assert (c.log_format, c.log_level) == ("text", "INFO")
    assert c.node_id.rsplit("-", 1)[1].isdigit()


def test_transport_secret_is_derived_from_the_signing_key():
    assert config().transport_token_secret == "25e3081cec8616e400b71434e2c65cb910ec7bd84f9997249f03668401b2dcce"
    assert config(TRANSPORT_TOKEN_SECRET=" explicit ").transport_token_secret == "explicit"


def test_public_base_url_trailing_slashes_are_removed():
    assert config(PUBLIC_BASE_URL="https://gw.example.com///").public_base_url == "https://gw.example.com"


def test_public_base_url_is_derived_from_railway_domain():
    c = config(RAILWAY_PUBLIC_DOMAIN="myapp.up.railway.app")
    assert c.public_base_url == "https://myapp.up.railway.app"
    assert "https://myapp.up.railway.app/console" in c.redirect_allowlist


def test_explicit_public_base_url_wins_over_railway():
    c = config(PUBLIC_BASE_URL="https://mine.example", RAILWAY_PUBLIC_DOMAIN="myapp.up.railway.app")
    assert c.public_base_url == "https://mine.example"


def test_public_base_url_defaults_to_localhost_and_port():
    assert config(PORT="8091").public_base_url == "http://localhost:8091"


def test_console_url_is_not_duplicated_in_the_allowlist():
    c = config(REDIRECT_ALLOWLIST="http://localhost:8080/console, http://localhost:9/cb")
    assert c.redirect_allowlist == ("http://localhost:8080/console", "http://localhost:9/cb")


def test_register_redirect_uris_copy_the_allowlist_before_the_console_url():
    c = config(REDIRECT_ALLOWLIST="http://localhost:5/cb")
    assert c.oauth_redirect_uris == ("http://localhost:5/cb",)
    assert c.redirect_allowlist == ("http://localhost:5/cb", "http://localhost:8080/console")
    assert config(OAUTH_REDIRECT_URIS="urn:x").oauth_redirect_uris == ("urn:x",)


def test_csv_trims_items_and_drops_empty_ones():
    assert config(ALLOW_ORIGINS=" https://a.example , ,https://b.example ").allow_origins == (
        "https://a.example",
        "https://b.example",
    )
    assert config(ALLOW_ORIGINS=" , ").allow_origins == ("*",)


def test_strings_are_trimmed_and_blank_means_default():
    assert config(OAUTH_DEFAULT_CLIENT_ID="   ").oauth_default_client_id == "commands-agent"
    assert config(JWT_AUDIENCE="  aud  ").jwt_audience == "aud"
    assert config(AUTH_MODE=" DEMO ").auth_mode == "demo"


@pytest.mark.parametrize(
    ("raw", "expected"), [("120", 120), ("+7", 7), ("0", 3600), ("-5", 3600), ("abc", 3600), ("1.5", 3600)]
)
def test_seconds_fall_back_to_the_default_silently(raw, expected):
    assert config(ACCESS_TOKEN_TTL_SECONDS=raw).access_token_ttl_seconds == expected


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("INGRESS_RATE_WINDOW_SECONDS", "0", 1),
        ("INGRESS_RATE_WINDOW_SECONDS", "999999", 3600),
        ("INGRESS_RATE_WINDOW_SECONDS", "nope", 60),
        ("INGRESS_GLOBAL_LIMIT_PER_WINDOW", "-3", 1),
        ("INGRESS_GLOBAL_LIMIT_PER_WINDOW", "2000000", 1000000),
        ("INGRESS_IP_LIMIT_PER_WINDOW", "100001", 100000),
        ("INGRESS_ROUTE_LIMIT_PER_WINDOW", "0", 1),
        ("IDEMPOTENCY_TTL_SECONDS", "5", 30),
        ("IDEMPOTENCY_TTL_SECONDS", "90000", 86400),
        ("IDEMPOTENCY_TTL_SECONDS", "600", 600),
    ],
)
def test_bounded_ints_are_clamped(name, raw, expected):
    field = name.lower()
    assert getattr(config(**{name: raw}), field) == expected


@pytest.mark.parametrize("raw", ["1", "t", "T", "TRUE", "true", "True"])
def test_bool_true_spellings(raw):
    assert config(AUTH_MODE="oidc", OIDC_ISSUER_URL="https://i", OIDC_CLIENT_ID="c", DEMO_AUTH_DISABLED=raw)
    assert config(REQUIRE_ENCRYPTED_FRAMES="0", DJANGO_DEBUG=raw).debug is True


@pytest.mark.parametrize(("raw", "expected"), [("0", False), ("f", False), ("False", False), ("yes", True), ("", True)])
def test_bool_false_spellings_and_unknown_values(raw, expected):
    assert config(REQUIRE_ENCRYPTED_FRAMES=raw).require_encrypted_frames is expected


# Validation rows of docs/protocol/config.md §6, in order, with the exact messages.


def test_missing_signing_key_is_refused():
    assert error_of() == "JWT_SIGNING_KEY is required"
    assert error_of(JWT_SIGNING_KEY="   ") == "JWT_SIGNING_KEY is required"


def test_short_signing_key_is_refused_by_byte_length():
    assert error_of(JWT_SIGNING_KEY="short") == "JWT_SIGNING_KEY must be at least 32 bytes"
    assert error_of(JWT_SIGNING_KEY="  " + "a" * 31 + "  ") == "JWT_SIGNING_KEY must be at least 32 bytes"
    # 11 characters of 3 bytes each: 33 bytes, accepted although it is short in characters.
    assert config(JWT_SIGNING_KEY="€" * 11).jwt_signing_key == "€" * 11


def test_unsupported_state_backend_is_refused():
    assert (
        error_of(JWT_SIGNING_KEY=KEY, STATE_BACKEND="Etcd")
        == 'unsupported STATE_BACKEND="etcd" (use "memory" or "redis")'
    )


SHARED_DB = "postgres://gateway@db.internal:5432/gateway"
PUBLIC = "https://gw.example.com"


def test_redis_state_needs_redis_url_and_a_shared_database():
    assert error_of(JWT_SIGNING_KEY=KEY, STATE_BACKEND="redis", DATABASE_URL=SHARED_DB, PUBLIC_BASE_URL=PUBLIC) == (
        "REDIS_URL is required when STATE_BACKEND=redis"
    )
    assert error_of(JWT_SIGNING_KEY=KEY, STATE_BACKEND="redis", DATABASE_URL=SHARED_DB, REDIS_URL="redis://r/0") == (
        "PUBLIC_BASE_URL is required when STATE_BACKEND=redis (every process must issue tokens for one address)"
    )
    shared = (
        "DATABASE_URL must name a database every process shares when STATE_BACKEND=redis "
        "(postgres://… or a SQLite file)"
    )
    for database in ({}, {"DATABASE_URL": "sqlite://:memory:"}):
        env = {"STATE_BACKEND": "redis", "REDIS_URL": "redis://r:6379/0", "PUBLIC_BASE_URL": PUBLIC, **database}
        assert error_of(JWT_SIGNING_KEY=KEY, **env) == shared
    c = config(STATE_BACKEND="Redis", REDIS_URL="redis://r:6379/0", DATABASE_URL=SHARED_DB, PUBLIC_BASE_URL=PUBLIC)
    assert (c.state_backend, c.redis_url) == ("redis", "redis://r:6379/0")
    on_railway = {"RAILWAY_PUBLIC_DOMAIN": "gw.up.railway.app", "DATABASE_URL": "sqlite:////srv/gw.sqlite3"}
    assert config(STATE_BACKEND="redis", REDIS_URL="redis://r/0", **on_railway).state_backend == "redis"


def test_redis_state_without_its_packages_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "channels_redis" else real(name, *a)
    )
    env = {"STATE_BACKEND": "redis", "REDIS_URL": "redis://r/0", "DATABASE_URL": SHARED_DB, "PUBLIC_BASE_URL": PUBLIC}
    assert error_of(JWT_SIGNING_KEY=KEY, **env) == ("STATE_BACKEND=redis needs channels_redis (pip install '.[redis]')")


@pytest.mark.parametrize("raw", ["1", "29"])
def test_transport_ttl_below_30_is_refused(raw):
    assert error_of(JWT_SIGNING_KEY=KEY, TRANSPORT_TOKEN_TTL_SECONDS=raw) == (
        "TRANSPORT_TOKEN_TTL_SECONDS must be >= 30 (renewal happens at TTL/2)"
    )
    assert config(TRANSPORT_TOKEN_TTL_SECONDS="30").transport_token_ttl_seconds == 30


def test_demo_with_demo_auth_disabled_is_refused():
    assert error_of(JWT_SIGNING_KEY=KEY, DEMO_AUTH_DISABLED="true") == "AUTH_MODE=demo but DEMO_AUTH_DISABLED=true"


def test_firebase_needs_a_project_id():
    assert error_of(JWT_SIGNING_KEY=KEY, AUTH_MODE="firebase") == (
        "FIREBASE_PROJECT_ID is required when AUTH_MODE=firebase"
    )
    assert config(AUTH_MODE="firebase", FIREBASE_PROJECT_ID="p").firebase_project_id == "p"


@pytest.mark.parametrize("env", [{"OIDC_CLIENT_ID": "c"}, {"OIDC_ISSUER_URL": "https://i"}, {}])
def test_oidc_needs_issuer_and_client_id(env):
    assert error_of(JWT_SIGNING_KEY=KEY, AUTH_MODE="oidc", **env) == (
        "OIDC_ISSUER_URL and OIDC_CLIENT_ID are required when AUTH_MODE=oidc"
    )


def test_unknown_auth_mode_is_refused():
    assert error_of(JWT_SIGNING_KEY=KEY, AUTH_MODE="ldap") == 'unsupported AUTH_MODE="ldap"'


def test_demo_auth_disabled_is_ignored_outside_demo_mode():
    assert config(AUTH_MODE="firebase", FIREBASE_PROJECT_ID="p", DEMO_AUTH_DISABLED="true").auth_mode == "firebase"


def test_first_failure_wins():
    assert error_of(JWT_SIGNING_KEY="short", STATE_BACKEND="redis", AUTH_MODE="x") == (
        "JWT_SIGNING_KEY must be at least 32 bytes"
    )


@pytest.mark.parametrize(
    "entry",
    [
        "example.com",
        "https://example.com/path",
        "https://user@example.com",
        "https://example.com?q=1",
        "https://",
        "*x",
    ],
)
def test_invalid_cors_origins_are_refused(entry):
    assert error_of(JWT_SIGNING_KEY=KEY, ALLOW_ORIGINS=entry).startswith(f'ALLOW_ORIGINS entry "{entry}"')


def test_cors_origins_are_normalised():
    c = config(ALLOW_ORIGINS="HTTPS://App.Example.com/, https://*.Example.org, http://localhost:3000")
    assert c.allow_origins == ("https://app.example.com", "https://*.example.org", "http://localhost:3000")


# Our additions to the contract.


@pytest.mark.parametrize("raw", ["http", "0", "70000"])
def test_bad_port_is_refused(raw):
    assert error_of(JWT_SIGNING_KEY=KEY, PORT=raw) == "PORT must be an integer between 1 and 65535"


def test_transport_token_mode():
    assert config(TRANSPORT_TOKEN_MODE="Required").transport_token_mode == "required"
    assert error_of(JWT_SIGNING_KEY=KEY, TRANSPORT_TOKEN_MODE="strict") == (
        'unsupported TRANSPORT_TOKEN_MODE="strict" (use "optional" or "required")'
    )


def test_database_url_is_parsed_with_django_environ():
    c = config(DATABASE_URL="sqlite:////var/lib/gateway/db.sqlite3")
    assert c.database["ENGINE"] == "django.db.backends.sqlite3"
    assert c.database["NAME"] == "/var/lib/gateway/db.sqlite3"
    assert not c.database_in_memory
    pg = config(DATABASE_URL="postgres://u:p@db:5432/gw").database
    assert (pg["ENGINE"], pg["HOST"], pg["NAME"]) == ("django.db.backends.postgresql", "db", "gw")


def test_bad_database_url_is_refused():
    assert error_of(JWT_SIGNING_KEY=KEY, DATABASE_URL="nonsense") == "DATABASE_URL is not a valid database URL"


def test_redis_url_is_validated():
    assert config(REDIS_URL="redis://localhost:6379/0").redis_url == "redis://localhost:6379/0"
    assert error_of(JWT_SIGNING_KEY=KEY, REDIS_URL="http://localhost") == (
        "REDIS_URL must be a redis://, rediss:// or unix:// URL"
    )


def test_log_settings_are_validated():
    assert (config(LOG_FORMAT="JSON", LOG_LEVEL="debug").log_format, config(LOG_LEVEL="debug").log_level) == (
        "json",
        "DEBUG",
    )
    assert error_of(JWT_SIGNING_KEY=KEY, LOG_FORMAT="xml") == 'LOG_FORMAT must be "text" or "json"'
    assert error_of(JWT_SIGNING_KEY=KEY, LOG_LEVEL="loud") == (
        "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    )


def test_public_base_url_must_be_http_or_https():
    assert error_of(JWT_SIGNING_KEY=KEY, PUBLIC_BASE_URL="gw.example.com") == (
        "PUBLIC_BASE_URL must start with http:// or https://"
    )


def test_secrets_are_not_in_the_repr():
    text = repr(config(TRANSPORT_TOKEN_SECRET="transport-secret-value"))
    assert KEY not in text and "transport-secret-value" not in text


def test_resource_caps_default_to_decisions_h3():
    loaded = config()
    assert (loaded.max_sessions_per_device, loaded.max_streams_per_user, loaded.max_pending_invites_per_device) == (
        100,
        32,
        50,
    )
    assert (loaded.max_inflight_per_route, loaded.max_inflight_per_owner) == (64, 256)
    assert (loaded.session_backlog_bytes, loaded.stream_buffer_bytes) == (8 * 1024 * 1024, 4 * 1024 * 1024)
    assert config(MAX_STREAMS_PER_USER="0").max_streams_per_user == 1  # clamped
    assert config(MAX_INFLIGHT_PER_ROUTE="junk").max_inflight_per_route == 64


def test_ingress_base_url_gives_webhooks_a_host_of_their_own():
    loaded = config(INGRESS_BASE_URL="https://Hooks.Example.com/", PUBLIC_BASE_URL="https://gw.example.com")
    assert (loaded.ingress_url, loaded.ingress_host) == ("https://Hooks.Example.com", "hooks.example.com")
    assert (config().ingress_url, config().ingress_host) == ("http://localhost:8080", "")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://hooks.example.com", "INGRESS_BASE_URL must be an http:// or https:// origin"),
        ("https://hooks.example.com/path", "INGRESS_BASE_URL must be an http:// or https:// origin"),
        ("https://", "INGRESS_BASE_URL must be an http:// or https:// origin"),
        ("http://localhost:9000", "INGRESS_BASE_URL must name a host other than PUBLIC_BASE_URL's"),
    ],
)
def test_a_bad_ingress_base_url_stops_start_up(value, message):
    assert error_of(JWT_SIGNING_KEY=KEY, INGRESS_BASE_URL=value).startswith(message)


@pytest.mark.parametrize("name", ["OAUTH_DEFAULT_CLIENT_ID", "OAUTH_CLIENT_NAME"])
def test_oauth_client_strings_fit_their_column(name):
    assert getattr(config(**{name: "c" * 255}), name.lower()) == "c" * 255
    assert error_of(JWT_SIGNING_KEY=KEY, **{name: "c" * 256}) == f"{name} must be at most 255 characters"


def test_operator_emails_are_lowercased_and_deduplicated():
    assert config().operator_emails == ()
    emails = config(OPERATOR_EMAILS=" Boss@Example.com, ops@example.com,boss@example.com ,").operator_emails
    assert emails == ("boss@example.com", "ops@example.com")


@pytest.mark.parametrize("entry", ["boss", "@example.com", "boss@", "a@b@c", "bo ss@example.com", "x" * 320 + "@e.c"])
def test_an_operator_email_that_is_no_email_stops_start_up(entry):
    message = error_of(JWT_SIGNING_KEY=KEY, OPERATOR_EMAILS=f"ok@example.com,{entry}")
    assert message == f'OPERATOR_EMAILS entry "{entry}" is not an email address'
