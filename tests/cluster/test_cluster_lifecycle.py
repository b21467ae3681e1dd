"""Nodes coming and going (signaling-only calls: placement and sessions, no audio needed):

- SIGTERM drains a node: marked draining, no new call is placed on it, it exits once its calls end;
- the leader killed: another node takes the lead, the sessions relayed to the old one end with a reason,
  the calls it led are dropped by their node, clients sign in again and calls work; the old leader,
  restarted, rejoins as a follower.
"""

from __future__ import annotations

import asyncio
import json
import signal

import aiohttp
import pytest
import redis.asyncio as aioredis
from bargein.signaling.client import ClientError, SignalingClient, place_call, sign_in
from helpers.redis_server import RedisServer

from .conftest import eventually, start_cluster

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


async def test_a_killed_leader_is_replaced_and_clients_sign_in_again(redis_server: RedisServer,
                                                                    session: aiohttp.ClientSession) -> None:
    cluster = await start_cluster(redis_server, session, ["n1", "n2", "n3"])
    redis = aioredis.from_url(redis_server.url, decode_responses=True)
    clients: list[SignalingClient] = []
    try:
        n1, n2, n3 = cluster["n1"], cluster["n2"], cluster["n3"]
        customer, agent, call1 = await call(session, n3.ws, n2.ws, 1)
        clients += [customer, agent]
        assert await placed_on(redis, call1) == "n2"

        n1.kill()  # SIGKILL: the leader, with the whole cluster's signaling state

        async def new_leader() -> bool:
            return await redis.get("bargein:leader") in ("n2", "n3")
        await eventually(new_leader, what="a new leader")
        leader = await redis.get("bargein:leader")
        for client in (customer, agent):  # relayed sessions end, saying why
            await eventually(lambda client=client: asyncio.sleep(0, client.closed), what="session closed")
            assert "n1" in (client.close_reason or "") and "sign in again" in (client.close_reason or "")

        async def dropped() -> bool:
            health = await n2.health(session)
            return health is not None and health["mixer"]["legs"] == 0
        await eventually(dropped, what="n2 dropped the old leader's call")

        async def forgotten() -> bool:
            return await redis.hget("bargein:nodes", "n1") is None
        await eventually(forgotten, what="the dead leader's entry removed")
        await cluster.wait(session, leader, ["n2", "n3"])

        async def works() -> bool:
            try:
                c, a, call_id = await call(session, n2.ws, n3.ws, 2)
            except ClientError:
                return False
            clients.extend([c, a])
            return await redis.get(f"bargein:call:{call_id}") in ("n2", "n3")
        await eventually(works, what="a call after the new leader took over")

        n1.start()  # the old leader, restarted, rejoins as a follower
        await cluster.wait(session, leader)
        again = await sign_in(n1.ws, "supervisor1", session=session, timeout=SLOW)
        clients.append(again)
        assert (await again.request("SUBSCRIBE", event="agents", timeout=SLOW))["status"] == 200
        view = await again.expect("NOTIFY", event="agents", timeout=SLOW)
        assert any(a["agent"] == "agent2" and a["state"] == "on-call" for a in view["agents"])
    finally:
        for c in clients:
            await c.close()
        await redis.aclose()
        cluster.stop()
