"""Two nodes, one signaling core: a client on the node that does not lead is relayed to the leader over Redis.

Sign-in, presence, a call between users on different nodes, the agents view (the same from both nodes),
sign-in replacement across nodes and refusals all behave as on one server.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import redis.asyncio as aioredis
from bargein.signaling.client import Refused, place_call, sign_in
from helpers.redis_server import RedisServer

from .conftest import start_cluster, without_clocks

pytestmark = pytest.mark.slow
SLOW = 60.0  # request timeout (failure guard): relayed requests on a busy machine


async def agents(session: aiohttp.ClientSession, base: str) -> list[dict]:
    async with session.get(base + "/api/agents", headers={"Authorization": "Bearer supervisor1"}) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["agents"]


async def test_two_nodes_share_one_signaling_core(redis_server: RedisServer, session: aiohttp.ClientSession) -> None:
    cluster = await start_cluster(redis_server, session, ["n1", "n2"])
    redis = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        assert await redis.get("bargein:leader") == "n1"
        assert set(await redis.hkeys("bargein:nodes")) == {"n1", "n2"}
        n1, n2 = cluster["n1"], cluster["n2"]

        with pytest.raises(Refused) as refused:  # the leader's core answers relayed requests: same refusals
            await sign_in(n2.ws, "no-such-token", session=session, timeout=SLOW)
        assert refused.value.status == 401

        agent = await sign_in(n2.ws, "agent1", session=session, state="available", timeout=SLOW)  # relayed
        customer = await sign_in(n1.ws, "customer1", session=session, timeout=SLOW)  # on the leader
        sup = await sign_in(n2.ws, "supervisor1", session=session, timeout=SLOW)
        assert (await sup.request("SUBSCRIBE", event="agents"))["status"] == 200
        await sup.expect("NOTIFY", event="agents", timeout=SLOW)

        views = [await agents(session, n.base) for n in (n1, n2)]
        assert without_clocks(views[0]) == without_clocks(views[1])
        assert any(a["agent"] == "agent1" and a["state"] == "available" for a in views[0])

        call_id = await place_call(customer, agent, timeout=SLOW)
        assert await redis.get(f"bargein:call:{call_id}") == "n2"  # fewest legs; the leader last on a tie
        views = [await agents(session, n.base) for n in (n1, n2)]
        assert without_clocks(views[0]) == without_clocks(views[1])
        assert any(a["agent"] == "agent1" and a.get("call_id") == call_id for a in views[1])
        while True:  # the relayed NOTIFY reaches the supervisor on n2 too
            note = await sup.expect("NOTIFY", event="agents", timeout=SLOW)
            if any(a.get("call_id") == call_id for a in note["agents"]):
                break

        assert (await agent.request("BYE", call_id=call_id))["status"] == 200
        for _ in range(200):  # failure guard: the key goes with the call's last leg
            if await redis.get(f"bargein:call:{call_id}") is None:
                break
            await asyncio.sleep(0.05)
        assert await redis.get(f"bargein:call:{call_id}") is None

        # signing in again on the other node replaces the relayed session, which is closed with the reason
        again = await sign_in(n1.ws, "agent1", session=session, timeout=SLOW)
        for _ in range(200):
            if agent.closed:
                break
            await asyncio.sleep(0.05)
        assert agent.closed and "another connection" in (agent.close_reason or "")
        for c in (again, customer, sup):
            await c.close()
    finally:
        await redis.aclose()
        cluster.stop()
