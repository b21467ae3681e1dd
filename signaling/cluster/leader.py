"""Which node runs the signaling core: the holder of ``bargein:leader``.

A node takes the lock with ``SET bargein:leader <node> NX PX 5000`` and renews it every second with a
compare-and-extend script; if it dies, the lock lapses and another node takes it at once, with the
leader's snapshot (``bargein:core``, :mod:`.handover`). Without a snapshot (Redis restarted empty) a node
that has seen a leader waits until the lock has been missing for a whole TTL (with Redis reachable)
before taking it, so the old leader, which re-asserts its lock on its first renewal, keeps it.
The leader keeps leading through a Redis outage (it holds the state); when Redis answers again and
someone else holds the lock, it steps down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

from .bus import Bus, Unavailable
from .keys import CORE, HEARTBEAT_S, LEADER, LEADER_TTL_MS

log = structlog.get_logger("bargein.cluster")

# KEYS[1] lock, ARGV: node, ttl ms, re-assert ("1": take the lock back if it vanished, e.g. Redis restarted)
RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder and ARGV[3] == '1' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class Leadership:
    def __init__(self, bus: Bus, node: str) -> None:
        self.bus, self.node = bus, node
        self.leader: str | None = None  # as far as this node knows
        self.may_lead = True  # False while draining: a draining node never takes the lock
        self.on_change: Callable[[str | None, str | None], None] = lambda old, new: None
        self._seen_leader = False
        self._absent_since: float | None = None
        self._renew = bus.redis.register_script(RENEW)

    @property
    def is_leader(self) -> bool:
        return self.leader == self.node

    def _set(self, leader: str | None) -> None:
        if leader == self.leader:
            return
        old, self.leader = self.leader, leader
        if leader is not None:
            self._seen_leader = True
        log.info("cluster.leader_changed", node=self.node, old=old, new=leader)
        self.on_change(old, leader)

    async def step(self) -> None:
        if self.is_leader:
            held = await self.bus.run(lambda r: self._renew(keys=[LEADER], args=[self.node, LEADER_TTL_MS, "1"]))
            if not held:
                holder = await self.bus.run(lambda r: r.get(LEADER))
                log.error("cluster.leadership_lost", node=self.node, holder=holder)
                self._set(holder)
            return
        holder = await self.bus.run(lambda r: r.get(LEADER))
        if holder is not None:
            self._absent_since = None
            self._set(holder)
            return
        now = time.monotonic()
        self._absent_since = self._absent_since or now
        # the lock lapsed with the leader's snapshot still there: Redis did not restart, the leader is gone
        lapsed = now - self._absent_since >= LEADER_TTL_MS / 1000 or (
            self.leader is not None and bool(await self.bus.run(lambda r: r.exists(CORE))))
        if lapsed and self.leader is not None:
            self._set(None)  # the leader's lock lapsed: it is gone
        if self.may_lead and (lapsed or not self._seen_leader):
            if await self.bus.run(lambda r: r.set(LEADER, self.node, nx=True, px=LEADER_TTL_MS)):
                self._set(self.node)
            else:
                self._set(await self.bus.run(lambda r: r.get(LEADER)))

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except Unavailable:
                self._absent_since = None  # absence counts only while Redis answers
            await asyncio.sleep(HEARTBEAT_S)

    async def release(self) -> None:
        """Clean exit of the leader: the lock goes now, another node takes over within a second."""
        if self.is_leader:
            await self.bus.run(lambda r: r.eval(RELEASE, 1, LEADER, self.node))
            log.info("cluster.leadership_released", node=self.node)
