"""Failures of a three-node cluster (real node processes, a real redis-server):

- a node killed with SIGKILL while it hosts a call whose parties are connected to other nodes: they are
  told the call ended and why, the node's entry and the call's key are gone after the timeout, and a new
  call works;
- redis-server stopped during a call: the call keeps its audio, a new sign-in or call is refused with
  "cluster unavailable: ...", and once Redis is back (restarted empty) new calls work again.
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
import redis.asyncio as aioredis
from bargein.signaling.client import ClientError, Refused, place_call, sign_in
from bargein.signaling.cluster.keys import JUDGE_AFTER_S, LEADER_TTL_MS, NODE_TIMEOUT_S
from bargein.signaling.webrtc_client import ClientLeg
from helpers.redis_server import RedisServer

from .conftest import eventually, start_cluster
from .tones import TONES, expected, settles

pytestmark = pytest.mark.slow
SLOW = 60.0


async def call_with_tones(session: aiohttp.ClientSession, customer_ws: str, agent_ws: str, customer: str,
                          agent: str) -> tuple[dict, dict, str]:
    a = await sign_in(agent_ws, agent, session=session, state="available", timeout=SLOW)
    c_leg, a_leg = ClientLeg(TONES["customer"]), ClientLeg(TONES["agent"])
    c = None
    try:
        c = await sign_in(customer_ws, customer, session=session, timeout=SLOW)
        call_id = await place_call(c, a, customer_media=c_leg, agent_media=a_leg, timeout=SLOW)
    except BaseException:
        for x in (c_leg, a_leg, a, *([c] if c else [])):
            await x.close()
        raise
    return {"ws": c, "leg": c_leg}, {"ws": a, "leg": a_leg}, call_id


async def close_all(*parties: dict) -> None:
    for p in parties:
        await p["leg"].close()
        await p["ws"].close()


async def test_killed_node_ends_its_calls_for_parties_elsewhere(redis_server: RedisServer,
                                                                session: aiohttp.ClientSession) -> None:
    cluster = await start_cluster(redis_server, session, ["n1", "n2", "n3"])
    redis = aioredis.from_url(redis_server.url, decode_responses=True)
    parties: list[dict] = []
    try:
        n1, n2, n3 = cluster["n1"], cluster["n2"], cluster["n3"]
        cust, agent, call_id = await call_with_tones(session, n1.ws, n3.ws, "customer1", "agent1")
        parties += [cust, agent]
        assert await redis.get(f"bargein:call:{call_id}") == "n2"  # hosted by neither party's node
        sup = await sign_in(n3.ws, "supervisor1", session=session, timeout=SLOW)
        assert (await sup.request("INVITE", to=f"call:{call_id}", timeout=SLOW))["status"] == 200
        assert await settles({"customer": cust["leg"], "agent": agent["leg"]}, want := expected(None)) == want

        n2.kill()  # SIGKILL, its media worker too
        for party in (cust, agent):
            bye = await party["ws"].expect("BYE", call_id=call_id, timeout=SLOW)
            assert "node n2 lost" in bye["reason"], bye
        ended = await sup.expect("NOTIFY", event="session-ended", call_id=call_id, timeout=SLOW)
        assert "node n2 lost" in ended["reason"], ended

        async def gone() -> bool:
            return await redis.hget("bargein:nodes", "n2") is None and \
                await redis.get(f"bargein:call:{call_id}") is None
        await eventually(gone, what="n2's entry and the call's key removed")
        assert set(await redis.hkeys("bargein:nodes")) == {"n1", "n3"}

        # the rest of the cluster goes on: a new call between the same nodes works, on a live node
        await close_all(cust, agent)
        parties.clear()
        cust, agent, call2 = await call_with_tones(session, n1.ws, n3.ws, "customer2", "agent2")
        parties += [cust, agent]
        assert await redis.get(f"bargein:call:{call2}") == "n3"
        assert await settles({"customer": cust["leg"], "agent": agent["leg"]}, want := expected(None)) == want
        await sup.close()
    finally:
        await close_all(*parties)
        await redis.aclose()
        cluster.stop()


async def test_redis_outage_keeps_calls_refuses_new_ones_and_recovers(redis_server: RedisServer,
                                                                      session: aiohttp.ClientSession) -> None:
    cluster = await start_cluster(redis_server, session, ["n1", "n2", "n3"])
    parties: list[dict] = []
    try:
        n1, n2, n3 = cluster["n1"], cluster["n2"], cluster["n3"]
        cust, agent, call_id = await call_with_tones(session, n3.ws, n1.ws, "customer1", "agent1")
        parties += [cust, agent]
        legs = {"customer": cust["leg"], "agent": agent["leg"]}
        assert await settles(legs, want := expected(None)) == want
        waiting = await sign_in(n1.ws, "customer3", session=session, timeout=SLOW)  # on the leader, before
        standby = await sign_in(n1.ws, "agent3", session=session, state="available", timeout=SLOW)

        redis_server.stop()
        # an outage longer than the node timeout and the leader lock's TTL: nobody may look dead afterwards
        await asyncio.sleep(NODE_TIMEOUT_S + LEADER_TTL_MS / 1000)
        # the call's audio goes on (its media is on n2, its parties' sockets on n3 and n1)
        assert await settles(legs, want) == want
        # a new sign-in relayed through a node that cannot reach Redis is refused with the reason
        with pytest.raises(Refused) as refused:
            await sign_in(n2.ws, "customer2", session=session, timeout=SLOW)
        assert refused.value.status == 503 and "cluster unavailable" in refused.value.reason
        # a new call on the leader cannot be placed on a node: refused with the reason too
        r = await waiting.invite("queue:support", media=(probe := ClientLeg(TONES["supervisor"])), timeout=SLOW)
        await probe.close()
        assert r["status"] >= 400 and "cluster unavailable" in r["reason"], r
        assert await settles(legs, want) == want

        redis_server.start()  # same port, empty: nodes register again, the leader re-asserts its lock
        await cluster.wait(session, "n1")
        assert await settles(legs, want) == want  # still the same call, still its audio

        async def new_call_works() -> bool:
            try:
                c, a, _ = await call_with_tones(session, n2.ws, n3.ws, "customer2", "agent2")
            except ClientError:  # refused or timed out while the cluster comes back (failure guard)
                return False
            parties.extend([c, a])
            return True
        await eventually(new_call_works, what="a new call after Redis returned")
        c, a = parties[-2:]
        assert await settles({"customer": c["leg"], "agent": a["leg"]}, want := expected(None)) == want
        await asyncio.sleep(JUDGE_AFTER_S)  # past the time the leader judges nodes again: nothing was lost
        async with session.get(n2.base + "/api/calls?token=supervisor1") as r:
            assert call_id in {c["call_id"] for c in (await r.json())["calls"]}
        assert await settles(legs, want) == want
        assert (await n1.health(session))["cluster"]["leader"] == "n1"
        await waiting.close()
        await standby.close()
    finally:
        await close_all(*parties)
        cluster.stop()
