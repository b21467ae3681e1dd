"""Three nodes, one call: the customer on node n1 (the leader), the agent on n2, the supervisor on n3.

The call's media lives on one node (n2: placed by load) with every party's leg, whatever node holds the
party's socket; monitor, barge and coach are proved by a distinct tone per party; the agents view is the
same on every node.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import redis.asyncio as aioredis
from bargein.signaling.client import place_call, sign_in
from bargein.signaling.webrtc_client import ClientLeg
from helpers.redis_server import RedisServer

from .conftest import start_cluster, without_clocks
from .tones import TONES, expected, settles

pytestmark = pytest.mark.slow
SLOW = 60.0


async def agents_views(session: aiohttp.ClientSession, bases: list[str]) -> list[list[dict]]:
    out = []
    for base in bases:
        async with session.get(base + "/api/agents?token=supervisor1") as r:
            assert r.status == 200, await r.text()
            out.append(without_clocks((await r.json())["agents"]))
    return out


async def test_three_nodes_monitor_barge_coach_by_tones(redis_server: RedisServer,
                                                         session: aiohttp.ClientSession) -> None:
    cluster = await start_cluster(redis_server, session, ["n1", "n2", "n3"])
    redis = aioredis.from_url(redis_server.url, decode_responses=True)
    legs: dict[str, ClientLeg] = {}
    try:
        n1, n2, n3 = cluster["n1"], cluster["n2"], cluster["n3"]
        customer = await sign_in(n1.ws, "customer1", session=session, timeout=SLOW)
        agent = await sign_in(n2.ws, "agent1", session=session, state="available", timeout=SLOW)
        legs["customer"], legs["agent"] = ClientLeg(TONES["customer"]), ClientLeg(TONES["agent"])
        call_id = await place_call(customer, agent, customer_media=legs["customer"], agent_media=legs["agent"],
                                   timeout=SLOW)
        host = await redis.get(f"bargein:call:{call_id}")
        assert host == "n2"
        assert await settles(legs, want := expected(None)) == want

        sup = await sign_in(n3.ws, "supervisor1", session=session, timeout=SLOW)
        legs["supervisor"] = ClientLeg(TONES["supervisor"])
        r = await sup.invite(f"call:{call_id}", media=legs["supervisor"], timeout=SLOW)
        assert r["status"] == 200, r
        for mode in ("monitor", "barge", "coach", "monitor"):
            r = await sup.request("INFO", call_id=call_id, action="mode", mode=mode, timeout=SLOW)
            assert r["status"] == 200, r
            assert await settles(legs, want := expected(mode)) == want, mode

        # every leg (three parties on three nodes) is mixed on the call's node, and only there
        healths = {n.name: await n.health(session) for n in (n1, n2, n3)}
        assert {name: h["mixer"]["legs"] for name, h in healths.items()} == {"n1": 0, "n2": 3, "n3": 0}
        views = await agents_views(session, [n1.base, n2.base, n3.base])
        assert views[0] == views[1] == views[2]
        assert any(a["agent"] == "agent1" and a.get("call_id") == call_id for a in views[0])

        assert (await agent.request("BYE", call_id=call_id, timeout=SLOW))["status"] == 200
        ended = await sup.expect("NOTIFY", event="session-ended", timeout=SLOW)
        assert "agent ended the call" in ended["reason"]
        for _ in range(400):  # failure guard: the node applies the removals asynchronously
            if (await n2.health(session))["mixer"]["legs"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await n2.health(session))["mixer"]["legs"] == 0
        for c in (customer, agent, sup):
            await c.close()
    finally:
        for leg in legs.values():
            await leg.close()
        await redis.aclose()
        cluster.stop()
