"""The gateway's settings with the byte budgets switched off (decisions.md H3: replay backlog bytes per session,
bytes queued per stream reader; bench/switches.py): a variant of bench/hardening_ab.py."""

from gateway_site.settings import *  # noqa: F403
from gateway_site.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.switches.Switches"]
BENCH_SWITCHED_OFF = "budgets"
GATEWAY_SESSION_STORE = "bench.switches.CountOnlyBacklogSessionStore"
