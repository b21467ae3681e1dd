"""The server path: a live server on 127.0.0.1, a few calls over real WebRTC legs, checked by tone."""

from collections.abc import AsyncIterator

import numpy as np
import pytest
from bargein.mixer import engine as mixer_engine
from bargein.mixer.routing import route
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings
from bargein.signaling.webrtc import WebRTCGateway
from bargein.simulator.remote import _run
from bargein.simulator.scenario import Scenario


@pytest.fixture
async def ws_url() -> AsyncIterator[str]:
    async with serving(BargeinServer(Settings(port=0), gateway=WebRTCGateway())) as base:
        yield base.replace("http://", "ws://") + "/ws"


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

    monkeypatch.setattr(mixer_engine, "route", leaky)
    sc = Scenario(server=ws_url, calls=1, webrtc_calls=1, duration_s=3, seed=2)
    r = await _run(sc, None)
    assert r.routing_violations > 0
    assert any(v["speaker"].startswith("supervisor") for v in r.violations)
