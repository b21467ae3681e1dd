"""The server path: a live server on 127.0.0.1, a few calls over real WebRTC legs, checked by tone."""

from collections.abc import AsyncIterator

import numpy as np
import pytest
from aiohttp import web

import mixer.engine
from mixer.routing import route
from signaling.server import BargeinServer
from signaling.settings import Settings
from signaling.webrtc import WebRTCGateway
from simulator.remote import _run
from simulator.scenario import Scenario


@pytest.fixture
async def ws_url() -> AsyncIterator[str]:
    srv = BargeinServer(Settings(port=0), gateway=WebRTCGateway())
    runner = web.AppRunner(srv.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"ws://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/ws"  # type: ignore[union-attr]
    await runner.cleanup()


async def test_remote_run_with_webrtc_calls_passes(ws_url: str) -> None:
    sc = Scenario(server=ws_url, calls=3, webrtc_calls=2, duration_s=4, seed=2)
    r = await _run(sc, None)
    assert r.routing_violations == 0, r.violations[:3]
    assert r.routing_checks >= 24 and r.calls_completed == 3 and r.monitor_sessions == 3
    assert r.supervision_ended_by_call_end == 3 and r.supervision_end_reasons_missing == 0
    assert r.barge_toggles + r.coach_toggles > 0


async def test_remote_checker_catches_a_server_that_lets_monitors_be_heard(ws_url: str, monkeypatch) -> None:
    def leaky(legs):  # a broken mixer: every supervisor is heard by everyone
        g = route(legs)
        for s, leg in enumerate(legs):
            if leg.mode is not None:
                g[:, s] = 1.0
                g[s, s] = 0.0
        return g.astype(np.float32)

    monkeypatch.setattr(mixer.engine, "route", leaky)
    sc = Scenario(server=ws_url, calls=1, webrtc_calls=1, duration_s=3, seed=2)
    r = await _run(sc, None)
    assert r.routing_violations > 0
    assert any(v["speaker"].startswith("supervisor") for v in r.violations)
