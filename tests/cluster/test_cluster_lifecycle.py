"""Nodes coming and going:

- SIGTERM drains a node: marked draining, no new call is placed on it, it exits once its calls end;
- the leader killed: another node takes the lead with the state the old one handed over (its snapshot):
  sessions on live nodes, calls on live nodes, their audio and supervision go on; the old leader,
  restarted, rejoins as a follower.
"""

from __future__ import annotations

import json
import signal

import aiohttp
import pytest
import redis.asyncio as aioredis
from bargein.signaling.client import SignalingClient, place_call, sign_in
from bargein.signaling.webrtc_client import ClientLeg
from helpers.redis_server import RedisServer

from .conftest import eventually, start_cluster
from .tones import TONES, expected, settles

pytestmark = pytest.mark.slow
SLOW = 60.0


async def call(session: aiohttp.ClientSession, customer_ws: str, agent_ws: str, n: int
               ) -> tuple[SignalingClient, SignalingClient, str]:
    agent = await sign_in(agent_ws, f"agent{n}", session=session, state="available", timeout=SLOW)
    customer = await sign_in(customer_ws, f"customer{n}", session=session, timeout=SLOW)
    return customer, agent, await place_call(customer, agent, timeout=SLOW)


async def placed_on(redis: aioredis.Redis, call_id: str) -> str:
    """The node a call was placed on: placement runs as a task beside the call's set-up, so a call
    without media can be answered before its key is written."""
    async def written() -> bool:
        return await redis.get(f"bargein:call:{call_id}") is not None
    await eventually(written, what=f"{call_id} placed")
    return await redis.get(f"bargein:call:{call_id}")


async def test_sigterm_drains_a_node(redis_server: RedisServer, session: aiohttp.ClientSession) -> None:
    cluster = await start_cluster(redis_server, session, ["n1", "n2"])
    redis = aioredis.from_url(redis_server.url, decode_responses=True)
    clients: list[SignalingClient] = []
    try:
        n1, n2 = cluster["n1"], cluster["n2"]
        c1, a1, call1 = await call(session, n1.ws, n2.ws, 1)
        c2, a2, call2 = await call(session, n1.ws, n1.ws, 2)  # its parties stay connected when n2 goes
        clients += [c1, a1, c2, a2]
        placed = [await placed_on(redis, c) for c in (call1, call2)]
        assert placed == ["n2", "n1"]  # the leader last on a tie, then the fewest legs: now a tie again

        n2.kill(signal.SIGTERM)

        async def draining() -> bool:
            entry = await redis.hget("bargein:nodes", "n2")
            return entry is not None and json.loads(entry)["draining"]
        await eventually(draining, what="n2 marked draining")
        c3, a3, call3 = await call(session, n1.ws, n1.ws, 3)
        clients += [c3, a3]
        assert await placed_on(redis, call3) == "n1"  # n2 would win the tie, but it drains
        assert n2.proc is not None and n2.proc.poll() is None  # still up: it hosts call1

        assert (await a1.request("BYE", call_id=call1, timeout=SLOW))["status"] == 200

        async def exited() -> bool:
            return n2.proc is not None and n2.proc.poll() is not None
        await eventually(exited, what="n2 exits once its call has ended")
        assert n2.proc is not None and n2.proc.returncode == 0
        assert await redis.hget("bargein:nodes", "n2") is None  # left cleanly
        assert (await a2.request("BYE", call_id=call2, timeout=SLOW))["status"] == 200  # the rest goes on
    finally:
        for c in clients:
            await c.close()
        await redis.aclose()
        cluster.stop()


async def test_a_killed_leader_is_replaced_and_its_calls_and_sessions_go_on(redis_server: RedisServer,
                                                                          session: aiohttp.ClientSession) -> None:
    """The leader dies with the cluster's signaling state: the node that takes over loads its snapshot.
    Sessions on live nodes and the call whose media runs on a live node go on, audio and supervision
    included; a call with a party on the dead leader ends for the others with a reason."""
    cluster = await start_cluster(redis_server, session, ["n1", "n2", "n3"])
    redis = aioredis.from_url(redis_server.url, decode_responses=True)
    clients: list[SignalingClient] = []
    legs: dict[str, ClientLeg] = {}
    try:
        n1, n2, n3 = cluster["n1"], cluster["n2"], cluster["n3"]
        customer = await sign_in(n3.ws, "customer1", session=session, timeout=SLOW)
        agent = await sign_in(n2.ws, "agent1", session=session, state="available", timeout=SLOW)
        clients += [customer, agent]
        legs["customer"], legs["agent"] = ClientLeg(TONES["customer"]), ClientLeg(TONES["agent"])
        call1 = await place_call(customer, agent, customer_media=legs["customer"], agent_media=legs["agent"],
                                 timeout=SLOW)
        assert await placed_on(redis, call1) == "n2"
        sup = await sign_in(n3.ws, "supervisor1", session=session, timeout=SLOW)
        clients.append(sup)
        legs["supervisor"] = ClientLeg(TONES["supervisor"])
        assert (await sup.invite(f"call:{call1}", media=legs["supervisor"], timeout=SLOW))["status"] == 200
        assert await settles(legs, want := expected("monitor")) == want
        # a second call whose customer is connected to the leader: it cannot survive the leader
        c2, a2, call2 = await call(session, n1.ws, n2.ws, 2)
        clients += [c2, a2]
        await a2.expect("ACK", call_id=call2, timeout=SLOW)  # what a party on another node heard is in Redis first

        n1.kill()  # SIGKILL: the leader, with the cluster's signaling state

        async def new_leader() -> bool:
            return await redis.get("bargein:leader") in ("n2", "n3")
        await eventually(new_leader, what="a new leader")
        leader = await redis.get("bargein:leader")
        await cluster.wait(session, leader, ["n2", "n3"])
        bye = await a2.expect("BYE", call_id=call2, timeout=SLOW)  # its customer's session was on the dead leader
        assert "customer" in bye["reason"], bye

        async def barged() -> bool:  # 503 "cluster unavailable" until the sessions follow the new leader
            r = await sup.request("INFO", call_id=call1, action="mode", mode="barge", timeout=SLOW)
            return r["status"] == 200
        await eventually(barged, what="the supervisor barges through the new leader")
        assert not any(c.closed for c in (customer, agent, sup))
        assert await settles(legs, want := expected("barge")) == want

        async def media_where_it_was() -> bool:  # call1's three legs stayed on n2; call2's left n3
            return [(await n.health(session))["mixer"]["legs"] for n in (n2, n3)] == [3, 0]
        await eventually(media_where_it_was, what="call1's legs on n2 only")
        assert (await cluster[leader].health(session))["cluster"]["snapshots"]["written"] >= 1  # it hands over in turn
        for base in (n2.base, n3.base):
            async with session.get(base + "/api/agents?token=supervisor1") as r:
                rows = (await r.json())["agents"]
            assert any(a["agent"] == "agent1" and a["state"] == "on-call" and a.get("call_id") == call1 for a in rows)

        assert (await agent.request("BYE", call_id=call1, timeout=SLOW))["status"] == 200
        ended = await sup.expect("NOTIFY", event="session-ended", timeout=SLOW)
        assert "agent ended the call" in ended["reason"]

        async def forgotten() -> bool:
            return await redis.hget("bargein:nodes", "n1") is None
        await eventually(forgotten, what="the dead leader's entry removed")

        n1.start()  # the old leader, restarted, rejoins as a follower
        await cluster.wait(session, leader)
        again = await sign_in(n1.ws, "supervisor2", session=session, timeout=SLOW)
        clients.append(again)
        assert (await again.request("SUBSCRIBE", event="agents", timeout=SLOW))["status"] == 200
        view = await again.expect("NOTIFY", event="agents", timeout=SLOW)
        assert any(a["agent"] == "agent1" and a["state"] != "offline" for a in view["agents"])
    finally:
        for c in clients:
            await c.close()
        for leg in legs.values():
            await leg.close()
        await redis.aclose()
        cluster.stop()
