"""The gateway's settings with the request inspector's recording off: the "off" side of bench/inspector_ab.py."""

from gateway_site.settings import *  # noqa: F403

GATEWAY_INSPECTOR_ENABLED = False
