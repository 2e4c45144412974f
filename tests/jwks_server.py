"""A tiny identity provider for tests: serves OIDC discovery and a JWKS on a loopback port, signs ID tokens."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


class Provider:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-key-1"
        self.jwks_requests = 0

    @property
    def jwks(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "alg": "RS256", "use": "sig"})
        return {"keys": [jwk]}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.base_url,
            "jwks_uri": f"{self.base_url}/jwks.json",
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def id_token(self, *, kid: str | None = None, key: Any = None, **claims: Any) -> str:
        now = int(time.time())
        # As real providers do, the token says the email was verified (pass email_verified=None to leave it out).
        body = {"iss": self.base_url, "aud": "client-1", "sub": "user-1", "iat": now, "exp": now + 300}
        body.update({"email_verified": True, **claims})
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})


@contextmanager
def identity_provider() -> Iterator[Provider]:
    holder: dict[str, Provider] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            provider = holder["p"]
            if self.path == "/.well-known/openid-configuration":
                body = provider.discovery()
            elif self.path == "/jwks.json":
                provider.jwks_requests += 1
                body = provider.jwks
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["p"] = Provider(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield holder["p"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
