"""Settings for the test run: the real settings, read from a clean, fixed environment."""

from __future__ import annotations

import os

from gateway_site.config import VARIABLES

# The machine's environment (or a developer's .env) must not change what the tests see.
for _name in VARIABLES:
    os.environ.pop(_name, None)
os.environ["DOTENV_PATH"] = "-"
os.environ["JWT_SIGNING_KEY"] = "test-signing-secret-at-least-32-bytes-long"

from gateway_site.settings import *  # noqa: E402, F403

# pytest-django creates and migrates the test database itself.
GATEWAY_AUTO_MIGRATE = False
