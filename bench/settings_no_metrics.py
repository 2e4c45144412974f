"""The gateway's settings with the metrics off (METRICS_ENABLED=false): a variant of bench/hardening_ab.py."""

import dataclasses

from gateway_site.settings import *  # noqa: F403
from gateway_site.settings import GATEWAY

GATEWAY = dataclasses.replace(GATEWAY, metrics_enabled=False)
