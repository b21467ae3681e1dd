"""The direct RTP path of server legs (signaling/rtp_direct.py): audio both ways without aiortc's
per-packet tasks once DTLS is up, with RTCP sender and receiver reports still right for the peer.
Real aiortc client peers over loopback, a real mixer and clock."""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection
from bargein.mixer import Role
from bargein.signaling.rtp_direct import UNAVAILABLE, DirectRtp
from helpers.gateway_rig import GatewayRig

HEARD, SILENT = -30.0, -50.0
CUSTOMER, AGENT = 500.0, 750.0


async def _stats(pc: RTCPeerConnection, kind: str) -> list[object]:
    found = []
    for t in pc.getTransceivers():
        for part in (t.sender, t.receiver):
            report = await part.getStats()
            found += [s for s in report.values() if s.type == kind]
    return found


async def _eventually(check, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    """RTCP reports go out every 0.5-1.5 s: wait for the awaited ``check`` to hold."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_direct_path_carries_each_legs_mix_both_ways(rig: GatewayRig) -> None:
    cust_leg, customer = await rig.join(Role.CUSTOMER, CUSTOMER)
    agent_leg, agent = await rig.join(Role.AGENT, AGENT)
    await asyncio.gather(customer.fresh(30), agent.fresh(30))
    assert customer.level(AGENT) > HEARD and customer.level(CUSTOMER) < SILENT
    assert agent.level(CUSTOMER) > HEARD and agent.level(AGENT) < SILENT
    for leg in (cust_leg, agent_leg):
        direct = rig.gateway.legs[leg].direct
        assert isinstance(direct, DirectRtp), "the direct path did not attach"
        assert direct.sent > 25 and direct.received > 25 and direct.send_errors == 0
        assert direct._protocol is not None  # packets are taken before aioice tries them as STUN
        # the Opus packets come the direct way: aiortc's receiver path only saw those before the first tick
        # after DTLS connected (when the path attaches)
        assert rig.gateway.legs[leg].receiver.packets - direct.received <= 5
        assert rig.gateway.legs[leg].track.dropped == 0 and not rig.gateway.legs[leg].track._queue


async def test_rtcp_reports_stay_right_on_the_direct_path(rig: GatewayRig) -> None:
    """The peer gets sender reports counting the packets sent directly, and receiver reports for the packets
    it sent us (aiortc's receiver never saw them: the direct path keeps its statistics)."""
    cust_leg, customer = await rig.join(Role.CUSTOMER, CUSTOMER)
    await rig.join(Role.AGENT, AGENT)
    await customer.fresh(30)

    async def sender_reports() -> bool:  # the client's view of our sender reports
        return any(s.packetsSent > 25 for s in await _stats(customer.pc, "remote-outbound-rtp"))

    async def receiver_reports() -> bool:  # our receiver reports on what the client sent
        reports = await _stats(customer.pc, "remote-inbound-rtp")
        return any(s.packetsReceived > 25 and s.packetsLost <= 2 for s in reports)

    await _eventually(sender_reports)
    await _eventually(receiver_reports)
    direct = rig.gateway.legs[cust_leg].direct
    assert isinstance(direct, DirectRtp)
    reported = max(s.packetsSent for s in await _stats(customer.pc, "remote-outbound-rtp"))
    assert reported <= direct.sent  # the counts are ours: aiortc's own sender sent nothing


async def test_a_leg_falls_back_to_aiortc_when_its_internals_are_missing(rig: GatewayRig, monkeypatch) -> None:
    """An aiortc without the pinned internals: legs keep aiortc's sender and still carry audio."""
    monkeypatch.setattr(DirectRtp, "attach", classmethod(lambda cls, *a: UNAVAILABLE))
    _, customer = await rig.join(Role.CUSTOMER, CUSTOMER)
    _, agent = await rig.join(Role.AGENT, AGENT)
    await asyncio.gather(customer.fresh(30), agent.fresh(30))
    assert customer.level(AGENT) > HEARD and agent.level(CUSTOMER) > HEARD
    assert all(state.direct is UNAVAILABLE for state in rig.gateway.legs.values())
