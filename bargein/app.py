"""Wiring: the signaling server with its mixer and WebRTC gateway, plus the live demo's calls.

The one place that puts the packages together: ``bargein serve`` calls :func:`serve`; tests and
embedders call :func:`build_server` and run it with :func:`bargein.signaling.server.serving`.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from bargein.signaling.cluster.node import ClusterNode
from bargein.signaling.media.pool import WorkerPool, default_workers
from bargein.signaling.server import BargeinServer, Service
from bargein.signaling.settings import Settings
from bargein.signaling.webrtc import WebRTCGateway
from bargein.simulator.demo import DemoCalls
from bargein.simulator.demo_chats import DemoChats

log = structlog.get_logger("bargein.app")


def media_workers(settings: Settings, demo_calls: int = 0) -> int:
    """How many media worker processes to run: the setting, else one per core; none (media in the
    signaling process) with demo calls, whose simulated parties feed this process's mixer directly."""
    n = settings.media_workers if settings.media_workers is not None else default_workers()
    if n and demo_calls:
        log.info("server.media_in_process", why="demo calls feed the signaling process's mixer", asked=n)
        return 0
    return n


def build_server(settings: Settings, *, demo_calls: int = 0, webrtc: bool = True,
                 demo_chats: int | None = None) -> BargeinServer:
    """A server for ``settings``; with ``demo_calls`` > 0 that many simulated calls run inside it, and
    ``demo_chats`` simulated chats (default: 3 beside demo calls, else none).
    WebRTC legs run in media worker processes (``settings.media_workers``; 0: in this process)."""
    if settings.redis_url:
        return build_cluster_node(settings)
    services: list[Service] = [DemoCalls(demo_calls)] if demo_calls else []
    chats = demo_chats if demo_chats is not None else (3 if demo_calls else 0)
    if chats:
        services.append(DemoChats(chats))
    n = media_workers(settings, demo_calls) if webrtc else 0
    if n:
        pool = WorkerPool(n, mixer_rate=settings.mixer_rate, limits=settings.limits,
                          heartbeat_timeout_s=settings.media_worker_timeout_s)
        return BargeinServer(settings, None, services, media=pool)
    return BargeinServer(settings, WebRTCGateway() if webrtc else None, services)


def build_cluster_node(settings: Settings) -> BargeinServer:
    """One node of a cluster (``--redis``): its media always runs in worker processes (at least one),
    because the calls it hosts are placed on it by the cluster's leader."""
    n = max(1, media_workers(settings))
    pool = WorkerPool(n, mixer_rate=settings.mixer_rate, limits=settings.limits)
    node = ClusterNode(settings, pool)
    return BargeinServer(settings, None, [node], media=node.media)  # type: ignore[arg-type]


def serve(settings: Settings, *, demo_calls: int = 0, demo_chats: int | None = None) -> None:
    """Run the server until interrupted (``bargein serve``)."""
    server = build_server(settings, demo_calls=demo_calls, demo_chats=demo_chats)
    log.info("server.listening", url=f"http://{settings.host}:{settings.port}/", demo_calls=demo_calls,
             media_workers=server.media.n if server.media else 0)
    web.run_app(server.app(), host=settings.host, port=settings.port, print=None)
