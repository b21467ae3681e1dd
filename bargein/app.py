"""Wiring: the signaling server with its mixer and WebRTC gateway, plus the live demo's calls.

The one place that puts the packages together: ``bargein serve`` calls :func:`serve`; tests and
embedders call :func:`build_server` and run it with :func:`bargein.signaling.server.serving`.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from bargein.signaling.server import BargeinServer, Service
from bargein.signaling.settings import Settings
from bargein.signaling.webrtc import WebRTCGateway
from bargein.simulator.demo import DemoCalls

log = structlog.get_logger("bargein.app")


def build_server(settings: Settings, *, demo_calls: int = 0, webrtc: bool = True) -> BargeinServer:
    """A server for ``settings``; with ``demo_calls`` > 0 that many simulated calls run inside it."""
    services: list[Service] = [DemoCalls(demo_calls)] if demo_calls else []
    return BargeinServer(settings, WebRTCGateway() if webrtc else None, services)


def serve(settings: Settings, *, demo_calls: int = 0) -> None:
    """Run the server until interrupted (``bargein serve``)."""
    server = build_server(settings, demo_calls=demo_calls)
    log.info("server.listening", url=f"http://{settings.host}:{settings.port}/", demo_calls=demo_calls)
    web.run_app(server.app(), host=settings.host, port=settings.port, print=None)
