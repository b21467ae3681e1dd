"""Two deciders racing to place the same calls: each call's lock is taken once, and both deciders end up
with the node the winner chose, although each preferred a different node (a real redis-server)."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from bargein.signaling.cluster.bus import Bus
from bargein.signaling.cluster.media import ClusterMedia
from bargein.signaling.cluster.registry import Load, NodeEntry, NodeRegistry
from bargein.signaling.media.pool import WorkerPool
from helpers.redis_server import RedisServer


def decider(url: str, name: str, busy: str) -> ClusterMedia:
    """A ClusterMedia that already placed a call of 5 legs on node ``busy``: it prefers the other node."""
    bus = Bus(url, name)
    media = ClusterMedia(bus, name, NodeRegistry(bus, name, f"http://{name}", "boot", Load), WorkerPool(1))
    media.call_node["earlier"] = busy
    media.legs.update({f"leg-{i}": "earlier" for i in range(5)})
    return media


async def test_two_deciders_never_both_take_a_call(redis_server: RedisServer) -> None:
    one, two = decider(redis_server.url, "d1", "b"), decider(redis_server.url, "d2", "a")
    redis = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        calls = [f"call-{i}" for i in range(200)]
        for call_id in calls:  # both at once: the loser's SET NX lands while the winner's key exists
            for n in ("a", "b"):  # both nodes alive, equally loaded as they report it
                entry = NodeEntry(node=n, url=f"http://{n}", boot="x", ts=time.time())
                await redis.hset("bargein:nodes", n, entry.model_dump_json())
            first, second = await asyncio.gather(one.place(call_id), two.place(call_id))
            assert (one.choose(), two.choose()) == ("a", "b")  # they did disagree
            holder = await redis.get(f"bargein:call:{call_id}")
            assert first == second == holder, (call_id, first, second, holder)
        assert {await redis.get(f"bargein:call:{c}") for c in calls} <= {"a", "b"}
    finally:
        await redis.aclose()
        for d in (one, two):
            await d.bus.close()
