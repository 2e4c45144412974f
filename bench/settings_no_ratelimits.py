"""The gateway's settings with the rate limits switched off (ingress per IP, route and global, replay, OAuth;
bench/switches.py): a variant of bench/hardening_ab.py."""

from gateway_site.settings import *  # noqa: F403
from gateway_site.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.switches.Switches"]
BENCH_SWITCHED_OFF = "ratelimits"
