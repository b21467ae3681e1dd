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


def decider(url: str, name: str, prefers: str) -> ClusterMedia:
    """A ClusterMedia whose registry sees nodes a and b, ``prefers`` carrying fewer legs."""
    bus = Bus(url, name)
    registry = NodeRegistry(bus, name, f"http://{name}", "boot", Load)
    registry.nodes = {n: NodeEntry(node=n, url=f"http://{n}", boot="b", ts=time.time(), legs=0 if n == prefers else 9)
                      for n in ("a", "b")}
    return ClusterMedia(bus, name, registry, WorkerPool(1))


async def test_two_deciders_never_both_take_a_call(redis_server: RedisServer) -> None:
    one, two = decider(redis_server.url, "d1", "a"), decider(redis_server.url, "d2", "b")
    assert (one.choose(), two.choose()) == ("a", "b")
    redis = aioredis.from_url(redis_server.url, decode_responses=True)
    try:
        calls = [f"call-{i}" for i in range(200)]
        for call_id in calls:  # both at once, the loser's SET NX lands while the winner's key exists
            first, second = await asyncio.gather(one.place(call_id), two.place(call_id))
            holder = await redis.get(f"bargein:call:{call_id}")
            assert first == second == holder, (call_id, first, second, holder)
        winners = {await redis.get(f"bargein:call:{c}") for c in calls}
        assert winners <= {"a", "b"}
    finally:
        await redis.aclose()
        for d in (one, two):
            await d.bus.close()
