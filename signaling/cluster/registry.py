"""The cluster's nodes: each writes its entry (address and load) into the hash ``bargein:nodes`` every
second; an entry older than ``NODE_TIMEOUT_S`` is a dead node.

Every node reads the whole hash each second (placement needs the loads). Only the leader judges: it
reports a node that stopped beating (or came back as a new process: another ``boot``) to ``on_lost``
and deletes its stale entry. It judges only after Redis has been reachable for ``JUDGE_AFTER_S``, so an
outage or a restarted, empty Redis never makes live nodes look dead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .bus import Bus, Unavailable
from .keys import HEARTBEAT_S, JUDGE_AFTER_S, NODE_TIMEOUT_S, NODES

log = structlog.get_logger("bargein.cluster")


class Load(BaseModel):
    calls: int = Field(0, ge=0)
    legs: int = Field(0, ge=0)
    cpu_pct: float = Field(0.0, ge=0)  # of one core, the node's processes together
    deadline_misses: int = Field(0, ge=0)


class NodeEntry(Load):
    """One node's entry in ``bargein:nodes`` (JSON)."""

    model_config = ConfigDict(extra="forbid")

    node: str
    url: str  # the node's HTTP base URL (its API, /ws, /healthz)
    boot: str  # differs on every start: a restarted node is a new process
    ts: float  # wall-clock time of the write (nodes' clocks must agree within a second: NTP)
    draining: bool = False


class NodeRegistry:
    def __init__(self, bus: Bus, node: str, url: str, boot: str, load: Callable[[], Load]) -> None:
        self.bus, self.node, self.url, self.boot, self.load = bus, node, url, boot, load
        self.draining = False
        self.judge = False  # the leader judges who is dead
        self.nodes: dict[str, NodeEntry] = {}  # live nodes, as last read
        self._known: dict[str, str] = {}  # node -> boot, every node seen alive and not yet declared lost
        self.on_lost: Callable[[str, str], None] = lambda node, reason: None

    def entry(self) -> NodeEntry:
        return NodeEntry(node=self.node, url=self.url, boot=self.boot, ts=time.time(), draining=self.draining,
                         **self.load().model_dump())

    def live(self) -> list[NodeEntry]:
        """Live nodes that take new calls."""
        return [e for e in self.nodes.values() if not e.draining]

    async def beat(self) -> None:
        entry = self.entry()
        await self.bus.run(lambda r: r.hset(NODES, self.node, entry.model_dump_json()))
        self.nodes[self.node] = entry

    async def read(self) -> list[str]:
        """Read every entry: ``nodes`` becomes the live ones; returns the stale ones."""
        raw = await self.bus.run(lambda r: r.hgetall(NODES))
        now = time.time()
        live: dict[str, NodeEntry] = {}
        stale: list[str] = []
        for node, text in raw.items():
            try:
                e = NodeEntry.model_validate_json(text)
            except ValidationError as exc:
                log.warning("cluster.bad_node_entry", node=node, error=str(exc))
                stale.append(node)
                continue
            if now - e.ts <= NODE_TIMEOUT_S:
                live[node] = e
            else:
                stale.append(node)
        self.nodes = live
        return stale

    async def scan(self) -> None:
        """Read, and as the leader judge: report lost nodes, remove stale entries."""
        stale = await self.read()
        live = self.nodes
        if not (self.judge and self.bus.steady_for() >= JUDGE_AFTER_S):
            for node, e in live.items():
                self._known.setdefault(node, e.boot)
            return
        for node, boot in list(self._known.items()):
            e = live.get(node)
            if e is None or e.boot != boot:
                del self._known[node]
                reason = f"node {node} lost" if e is None else f"node {node} restarted"
                log.error("cluster.node_lost", node=node, why=reason, by=self.node)
                self.on_lost(node, reason)
        for node, e in live.items():
            self._known.setdefault(node, e.boot)
        if stale:
            await self.bus.run(lambda r: r.hdel(NODES, *stale))
            log.info("cluster.stale_entries_removed", nodes=stale)

    async def run(self) -> None:
        while True:
            try:
                await self.beat()
                await self.scan()
            except Unavailable:
                pass  # the bus logged it; beats resume when Redis does
            await asyncio.sleep(HEARTBEAT_S)

    async def leave(self) -> None:
        """Clean exit: the entry goes now rather than after the timeout."""
        await self.bus.run(lambda r: r.hdel(NODES, self.node))
        log.info("cluster.node_left", node=self.node)
