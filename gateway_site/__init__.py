"""The gateway's Django project: settings, the configuration contract, ASGI entry point and cross-cutting helpers."""

__version__ = "0.2.0.dev0"
