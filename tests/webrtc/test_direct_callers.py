"""The capacity benchmark's cheap callers (benchmarks/_direct_caller.py): aiortc legs whose audio goes through
the direct RTP path with pre-encoded tones. The server must get exactly what aiortc callers would send:
each caller's tone decoded in the mixer (mix-minus: each hears only the other), from one unbroken SRTP stream."""

import asyncio

from bargein.mixer import LegRouting, Role
from bargein.mixer.tones import level_dbfs
from helpers.gateway_rig import GatewayRig

from benchmarks._direct_caller import DirectCallers

CUSTOMER, AGENT = 500.0, 750.0


async def test_direct_callers_are_heard_by_the_server_and_hear_it(rig: GatewayRig) -> None:
    callers = DirectCallers()
    legs = {}
    for role, freq in ((Role.CUSTOMER, CUSTOMER), (Role.AGENT, AGENT)):
        leg = rig.engine.add_leg("call-1", LegRouting(role))
        client = callers.leg()
        rig.clients.append(client)
        await client.accept(await rig.gateway.open_leg(leg, "call-1", await client.offer()))
        legs[role] = (leg, client, freq)
    try:
        await asyncio.gather(*(callers.go_direct(client, freq) for _, client, freq in legs.values()))
        await asyncio.sleep(1.0)  # past the adaptive buffer's start
        customer, agent = legs[Role.CUSTOMER][0], legs[Role.AGENT][0]
        heard = {}
        for _ in range(10):  # frames of several ticks (one may be a concealed gap)
            await asyncio.sleep(0.02)
            for leg in (customer, agent):
                heard.setdefault(leg, []).append(rig.engine.output(leg).copy())
        best = {leg: max(frames, key=lambda f: float((f.astype(float) ** 2).sum())) for leg, frames in heard.items()}
        assert level_dbfs(best[agent], CUSTOMER, 48000) > -30  # the agent hears the customer's tone ...
        assert level_dbfs(best[agent], AGENT, 48000) < -50  # ... and not its own
        assert level_dbfs(best[customer], AGENT, 48000) > -30
        assert level_dbfs(best[customer], CUSTOMER, 48000) < -50
        assert all(counted.packets >= 5 for _, _, counted in callers.legs)  # the server's packets came back
        assert all(direct.unprotect_errors == 0 and direct.sent > 0 for direct, _, _ in callers.legs)
        lost = [s.direct for s in rig.gateway.legs.values() if s.direct is not None]
        assert lost and all(d.unprotect_errors == 0 for d in lost)  # one unbroken SRTP stream per caller
    finally:
        await callers.close()
