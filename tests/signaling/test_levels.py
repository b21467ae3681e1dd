"""Who is talking on a supervised call: levels measured on the server, sent to the call's supervisors only.

The meter on its own (which legs it measures, its windows, its silence rule), the core (when it asks for
levels, who gets ``NOTIFY levels``), and a real server with real aiortc peers: a customer sending a tone
and a silent agent, measured in the signaling process and in a media worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from bargein.signaling.client import SignalingClient, place_call, sign_in
from bargein.signaling.levels import QUIET_RMS, TALKING_RMS, LevelMeter
from bargein.signaling.media.pool import WorkerPool
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings
from bargein.signaling.webrtc import WebRTCGateway
from bargein.signaling.webrtc_client import ClientLeg
from helpers.inprocess import Harness, offer, start_call
from hypothesis import given, settings
from hypothesis import strategies as st

N = 960


def frame(amplitude: float) -> np.ndarray:
    """A 20 ms square-ish frame whose RMS is ``amplitude`` of full scale."""
    return np.full(N, int(amplitude * 32767), dtype=np.int16) * np.where(np.arange(N) % 2, 1, -1).astype(np.int16)


class Legs:
    """A stand-in for the mixer's ``legs_of`` (the meter needs nothing else from it)."""

    def __init__(self, calls: dict[str, list[int]]) -> None:
        self.calls = calls

    def __call__(self, call: Any) -> list[int]:
        return self.calls[call]  # KeyError: the call left the mixer


def window(meter: LevelMeter) -> dict[Any, dict[int, float]]:
    """Run ticks until the meter reports (one window)."""
    for _ in range(meter.window):
        got = meter.tick()
    return got


# ---------------------------------------------------------------------------------------------- the meter
def test_only_metered_calls_are_measured_and_each_leg_gets_its_loudest_frame() -> None:
    legs = Legs({"call-1": [0, 1, 2], "call-2": [3, 4]})
    meter = LevelMeter(legs, window=5)
    meter.observe([0, 1, 3], np.stack([frame(0.5)] * 3))  # nothing is metered yet: ignored
    meter.meter("call-1", True)
    meter.observe([0, 1, 2, 3, 4], np.stack([frame(0.2), frame(0.0), frame(0.0), frame(0.9), frame(0.9)]))
    meter.observe([0, 1], np.stack([frame(0.05), frame(0.02)]))
    got = window(meter)
    assert set(got) == {"call-1"}  # call-2 has no supervisor: never measured
    assert got["call-1"][0] == pytest.approx(0.2, abs=1e-3)  # the loudest frame of the window
    assert got["call-1"][1] == pytest.approx(0.02, abs=1e-3)
    assert got["call-1"][2] == 0.0
    # a new window starts from nothing
    meter.observe([2], frame(0.3)[None, :])
    got = window(meter)
    assert got["call-1"][0] == 0.0 and got["call-1"][2] == pytest.approx(0.3, abs=1e-3)


def test_a_silent_call_is_reported_once_then_not_until_a_sound() -> None:
    meter = LevelMeter(Legs({"c": [0, 1]}), window=2)
    meter.meter("c", True)
    assert window(meter) == {}  # silent from the start: nothing to say
    meter.observe([0], frame(0.1)[None, :])
    assert window(meter)["c"][0] > TALKING_RMS
    assert window(meter) == {"c": {0: 0.0, 1: 0.0}}  # talking stopped: said once
    assert window(meter) == {}
    meter.observe([1], frame(0.001)[None, :])  # a faint sound is reported, and is not speech
    got = window(meter)["c"][1]
    assert QUIET_RMS < got < TALKING_RMS


def test_legs_that_join_later_are_measured_and_a_call_that_left_is_dropped() -> None:
    calls = {"c": [0, 1]}
    meter = LevelMeter(Legs(calls), window=1)
    meter.meter("c", True)
    calls["c"] = [0, 1, 200]  # a supervisor joined: leg ids grow past the meter's first arrays
    meter.tick()  # the window boundary picks up the call's legs
    meter.observe([200, 0], np.stack([frame(0.5), frame(0.0)]))
    assert meter.tick()["c"][200] == pytest.approx(0.5, abs=1e-3)
    del calls["c"]  # the call left the mixer
    meter.tick()
    assert meter.calls == []
    meter.meter("c", False)  # stopping a call the meter already dropped is harmless


def test_stopping_a_call_stops_its_reports() -> None:
    meter = LevelMeter(Legs({"c": [0]}), window=1)
    meter.meter("c", True)
    meter.observe([0], frame(0.4)[None, :])
    assert meter.tick()
    meter.meter("c", False)
    meter.observe([0], frame(0.4)[None, :])
    assert meter.tick() == {}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(0, 1)), min_size=1, max_size=40))
def test_reported_level_is_the_max_rms_of_the_metered_legs(pushes: list[tuple[int, float]]) -> None:
    meter = LevelMeter(Legs({"a": [0, 1, 2], "b": [3, 4, 5]}), window=1)
    meter.meter("a", True)
    for leg, amp in pushes:
        meter.observe(np.array([leg]), frame(amp)[None, :])
    got = meter.tick()
    for leg in (0, 1, 2):
        mine = [amp for lg, amp in pushes if lg == leg]
        want = max((float(np.sqrt(np.mean(frame(a).astype(np.float64) ** 2)) / 32768) for a in mine), default=0.0)
        if got:
            assert got["a"][leg] == pytest.approx(want, abs=2e-4)
        else:
            assert want < QUIET_RMS
    assert "b" not in got


# ---------------------------------------------------------------------------------------------- the core
def test_core_meters_a_call_while_it_has_a_supervisor(h: Harness) -> None:
    c, a, call_id = start_call(h)
    assert call_id not in h.metered  # nobody supervises: nothing measured
    s1, s2 = h.client("supervisor1"), h.client("supervisor2")
    assert s1.request("INVITE", to=f"call:{call_id}", sdp=offer("s1"))["status"] == 200
    assert h.metered[call_id] is True
    assert s2.request("INVITE", to=f"call:{call_id}")["status"] == 200
    assert s1.request("BYE", call_id=call_id)["status"] == 200
    assert h.metered[call_id] is True  # supervisor2 is still there
    assert s2.request("BYE", call_id=call_id)["status"] == 200
    assert h.metered[call_id] is False


def test_levels_go_to_the_supervisors_only_never_the_customer(h: Harness) -> None:
    c, a, call_id = start_call(h)
    s1, s2 = h.client("supervisor1"), h.client("supervisor2")
    for s in (s1, s2):
        assert s.request("INVITE", to=f"call:{call_id}")["status"] == 200
    legs = {p.user: p.leg for p in h.core.calls[call_id].participants.values()}
    h.apply(h.core.leg_levels(call_id, {legs["customer1"]: 0.2, legs["agent1"]: 0.0, legs["supervisor1"]: 0.001}))
    for s in (s1, s2):
        got = s.pop("NOTIFY", event="levels")
        assert got is not None and got["call_id"] == call_id and got["at"] == h.clock.t
        rows = {r["user"]: r for r in got["levels"]}
        assert rows["customer1"] == {"user": "customer1", "role": "customer", "level": 0.2, "talking": True}
        assert rows["agent1"]["talking"] is False and rows["supervisor1"]["talking"] is False
        assert "supervisor2" not in rows  # no level measured for it: left out
    assert not [m for m in c.inbox + a.inbox if m.get("event") == "levels"]
    assert h.core.leg_levels("call-404", {"leg-1": 0.5}) == []  # a call that ended meanwhile


# ---------------------------------------------------------------------------------------------- real server
@pytest.fixture(params=[0, pytest.param(2, marks=pytest.mark.slow)], ids=["media-in-process", "media-workers-2"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[BargeinServer, str]]:
    if request.param:
        srv = BargeinServer(Settings(port=0), media=WorkerPool(request.param, silent_peer_s=10.0))
    else:
        srv = BargeinServer(Settings(port=0), gateway=WebRTCGateway(silent_peer_s=10.0))
    async with serving(srv) as base:
        yield srv, base


def recorded(client: SignalingClient) -> list[dict[str, Any]]:
    """Every frame the server sends ``client`` from now on."""
    seen: list[dict[str, Any]] = []
    feed = client.feed

    def record(msg: dict[str, Any]) -> None:
        seen.append(msg)
        feed(msg)

    client.feed = record  # type: ignore[method-assign]
    return seen


async def test_a_real_call_customer_talking_agent_silent_seen_by_the_supervisor_only(
        server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    url = base + "/ws"
    agent = await sign_in(url, "agent1", state="available", timeout=60)
    customer = await sign_in(url, "customer1", timeout=60)
    sup = await sign_in(url, "supervisor1", timeout=60)
    to_customer, to_agent = recorded(customer), recorded(agent)
    cust_leg, agent_leg = ClientLeg(500.0), ClientLeg(750.0, amplitude=0.0)  # the agent says nothing
    try:
        call_id = await place_call(customer, agent, customer_media=cust_leg, agent_media=agent_leg)
        assert (await sup.request("INVITE", to=f"call:{call_id}"))["status"] == 200
        rows: dict[str, dict[str, Any]] = {}
        for _ in range(300):  # failure guard only: levels arrive ~5 times a second once audio flows
            got = await sup.expect("NOTIFY", event="levels", timeout=60)
            assert got["call_id"] == call_id
            rows = {r["user"]: r for r in got["levels"]}
            if rows.get("customer1", {}).get("talking"):
                break
        assert rows["customer1"]["talking"] is True and rows["customer1"]["level"] > 0.1  # a -15 dBFS RMS tone
        assert rows["agent1"]["talking"] is False and rows["agent1"]["level"] < TALKING_RMS
        assert rows["supervisor1"]["talking"] is False  # sends no audio
        await asyncio.sleep(0.5)  # more windows go by: still nothing reaches the customer or the agent
        assert not [m for m in to_customer + to_agent if m.get("event") == "levels"]
        assert not [m for m in to_customer if "supervisor" in str(m).lower()]
        assert (await sup.request("BYE", call_id=call_id))["status"] == 200
    finally:
        for leg in (cust_leg, agent_leg):
            await leg.close()
        for c in (sup, customer, agent):
            await c.close()
