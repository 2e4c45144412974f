"""`.env.example` lists every configuration variable, and a copy of it with a key set is a valid configuration."""

from __future__ import annotations

import re

from gateway_site import dotenv
from gateway_site.config import VARIABLES, load_config
from tests.helpers import ROOT

TEXT = (ROOT / ".env.example").read_text()


def test_every_variable_is_listed():
    listed = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", TEXT, re.MULTILINE))
    assert set(VARIABLES) <= listed, sorted(set(VARIABLES) - listed)


def test_every_variable_has_a_comment_line_above_it():
    lines = TEXT.splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^(# )?[A-Z][A-Z0-9_]+=", line):
            assert lines[index - 1].startswith("# ") and "=" not in lines[index - 1].split(" ")[1], line


def test_the_default_client_id_stays_commands_agent():
    assert "# OAUTH_DEFAULT_CLIENT_ID=commands-agent" in TEXT


def test_a_filled_in_copy_loads():
    environ = dotenv.parse(TEXT.replace("JWT_SIGNING_KEY=", "JWT_SIGNING_KEY=" + "k" * 40))
    assert load_config(environ).auth_mode == "demo"
