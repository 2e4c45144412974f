"""The ASGI entry point: lifecycle (SIGTERM, lifespan), access log and body limit around a ProtocolTypeRouter."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_site.settings")

# Django must be set up before any app code (consumers, models) is imported.
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import re_path  # noqa: E402

from gateway_site import boot, daphne_compat  # noqa: E402
from gateway_site.accesslog import AccessLogMiddleware  # noqa: E402
from gateway_site.auth import WebSocketBearerMiddleware  # noqa: E402
from gateway_site.bodylimit import BodyLimitMiddleware  # noqa: E402
from gateway_site.lifecycle import LifecycleMiddleware  # noqa: E402
from gateway_site.routing import INGRESS_PREFIX, GetOnly, HotPaths, IngressHost, socket_routes, stream_routes  # noqa: E402


def build_application() -> LifecycleMiddleware:
    router = ProtocolTypeRouter(
        {
            "http": HotPaths(
                GetOnly(
                    URLRouter([*stream_routes(), re_path(r"", django_application)]),  # type: ignore[arg-type]
                    django_application,
                )
            ),
            "websocket": WebSocketBearerMiddleware(URLRouter(socket_routes())),
        }
    )
    limited = BodyLimitMiddleware(
        IngressHost(router),
        settings.GATEWAY_MAX_BODY_BYTES,
        ingress_prefix=INGRESS_PREFIX,
        ingress_max_bytes=settings.GATEWAY_MAX_INGRESS_BODY_BYTES,
    )
    return LifecycleMiddleware(AccessLogMiddleware(limited))


boot.start()
daphne_compat.install()
application = build_application()
