"""The gateway's settings with the resource caps that count switched off (decisions.md H3: live sessions per
device, open streams per user, webhooks in flight per route and owner; bench/switches.py): a variant of
bench/hardening_ab.py."""

from gateway_site.settings import *  # noqa: F403
from gateway_site.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.switches.Switches"]
BENCH_SWITCHED_OFF = "caps"
GATEWAY_SESSION_STORE = "bench.switches.NoDeviceCapSessionStore"
