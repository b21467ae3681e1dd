"""Real aiortc peers over loopback against the real server: who hears whom, by FFT of what arrives."""

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from bargein.signaling.client import place_call, sign_in
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings
from bargein.signaling.webrtc import WebRTCGateway
from bargein.signaling.webrtc_client import ClientLeg
from helpers.media import vanish

TONE = {"customer": 500.0, "agent": 750.0, "supervisor": 1650.0, "supervisor2": 2200.0}
HEARD, SILENT = -30.0, -50.0  # tones are sent at -12 dBFS; Opus keeps them within a few dB


@pytest.fixture
async def server() -> AsyncIterator[tuple[BargeinServer, str]]:
    srv = BargeinServer(Settings(port=0), gateway=WebRTCGateway(silent_peer_s=3.0))
    async with serving(srv) as base:
        yield srv, base


async def live_call(session: aiohttp.ClientSession, base: str) -> tuple[dict, dict, str]:
    agent = await sign_in(base + "/ws", "agent1", session=session, state="available")
    customer = await sign_in(base + "/ws", "customer1", session=session)
    cust_leg, agent_leg = ClientLeg(TONE["customer"]), ClientLeg(TONE["agent"])
    call_id = await place_call(customer, agent, customer_media=cust_leg, agent_media=agent_leg)
    return {"ws": customer, "leg": cust_leg}, {"ws": agent, "leg": agent_leg}, call_id


async def supervise(session: aiohttp.ClientSession, base: str, call_id: str, token: str, tone: float) -> dict:
    ws = await sign_in(base + "/ws", token, session=session)
    leg = ClientLeg(tone)
    r = await ws.invite(f"call:{call_id}", media=leg)
    assert r["status"] == 200, r
    return {"ws": ws, "leg": leg}


async def hears(legs: dict[str, dict]) -> dict[str, set[str]]:
    """Wait for fresh audio everywhere, then say which tones each listener hears (and check silence)."""
    await asyncio.gather(*(x["leg"].fresh(30) for x in legs.values()))
    out = {}
    for listener, x in legs.items():
        levels = {speaker: x["leg"].level(TONE[speaker]) for speaker in legs if speaker != listener}
        own = x["leg"].level(TONE[listener])
        assert own < SILENT, f"{listener} hears own voice at {own:.1f} dB"
        for speaker, db in levels.items():
            assert db > HEARD or db < SILENT, f"{listener}<-{speaker} ambiguous level {db:.1f} dB"
        out[listener] = {s for s, db in levels.items() if db > HEARD}
    return out


async def test_monitor_barge_coach_matrix_over_webrtc(server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    async with aiohttp.ClientSession() as session:
        customer, agent, call_id = await live_call(session, base)
        sup = await supervise(session, base, call_id, "supervisor1", TONE["supervisor"])
        legs = {"customer": customer, "agent": agent, "supervisor": sup}
        assert await hears(legs) == {"customer": {"agent"}, "agent": {"customer"},
                                     "supervisor": {"customer", "agent"}}
        for mode, expected in [
            ("barge", {"customer": {"agent", "supervisor"}, "agent": {"customer", "supervisor"},
                       "supervisor": {"customer", "agent"}}),
            ("coach", {"customer": {"agent"}, "agent": {"customer", "supervisor"},
                       "supervisor": {"customer", "agent"}}),
            ("monitor", {"customer": {"agent"}, "agent": {"customer"}, "supervisor": {"customer", "agent"}}),
        ]:
            assert (await sup["ws"].request("INFO", call_id=call_id, action="mode", mode=mode))["status"] == 200
            assert await hears(legs) == expected, mode
        # a second supervisor (monitor-only profile) is refused barge and stays silent
        sup2 = await supervise(session, base, call_id, "monitoronly1", TONE["supervisor2"])
        r = await sup2["ws"].request("INFO", call_id=call_id, action="mode", mode="barge")
        assert r["status"] == 403 and "realtime_barge" in r["reason"]
        legs["supervisor2"] = sup2
        gw = srv.gateway
        encodes, deliveries = gw.encodes, gw.deliveries  # type: ignore[union-attr]
        heard = await hears(legs)
        # both supervisors hear the same mix: one Opus encode serves the two of them
        assert gw.deliveries - deliveries > gw.encodes - encodes  # type: ignore[union-attr]
        assert "supervisor2" not in heard["customer"] | heard["agent"] | heard["supervisor"]
        assert heard["supervisor2"] == {"customer", "agent"}
        # the agent hangs up: both supervisor sessions end with a reason
        assert (await agent["ws"].request("BYE", call_id=call_id))["status"] == 200
        for s in (sup, sup2):
            ended = await s["ws"].expect("NOTIFY", event="session-ended")
            assert "agent ended the call" in ended["reason"]
        assert srv.engine.leg_count == 0 and not srv.gateway.legs  # type: ignore[union-attr]
        for x in legs.values():
            await x["leg"].close()
            await x["ws"].close()


async def test_peer_that_vanishes_without_bye_is_cleaned_up(server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    async with aiohttp.ClientSession() as session:
        customer, agent, call_id = await live_call(session, base)
        sup = await supervise(session, base, call_id, "supervisor1", TONE["supervisor"])
        await sup["leg"].fresh(10)  # media is flowing
        await sup["leg"].close()  # the supervisor's peer closes; its signaling socket stays
        for _ in range(400):  # failure guard only
            if len(srv.engine.legs_of(call_id)) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(srv.engine.legs_of(call_id)) == 2, "the vanished supervisor leg was not freed"
        assert call_id in srv.core.calls  # the call goes on
        await agent["leg"].fresh(10)
        vanish(agent["leg"])  # the agent's peer goes silent without closing (killed browser): the call ends
        bye = await customer["ws"].expect("BYE", timeout=20)
        assert bye["call_id"] == call_id
        assert srv.engine.call_count == 0
        assert srv.gateway.lost == 2  # type: ignore[union-attr]
        for x in (customer, agent, sup):
            await x["leg"].close()
            await x["ws"].close()
