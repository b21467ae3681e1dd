"""The leader's side of the cluster's media: it places each call on one node and routes its leg
messages there. It stands where the signaling server expects its media worker pool (the same methods).

Placement: the live node (not draining) with the fewest legs, counted by the leader itself (it places
every call, so its counts are exact) with the nodes' own reports, then the leader last, then by name, locked with
``SET bargein:call:<id> <node> NX``: of two deciders that race for one call only one sets the key and
both then use the node it names. The leader refreshes the key of every call it leads each second (it
lapses ``CALL_TTL_MS`` after a dead leader's last refresh) and deletes it when the call's last leg goes.
A call's messages wait, in order, until its placement is known; if it cannot be placed (Redis down,
no live node) its offers are refused with "cluster unavailable: ...".
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import structlog
from bargein.mixer.routing import LegRouting
from prometheus_client.core import GaugeMetricFamily
from pydantic import ValidationError

from ..gateway import MediaError
from ..media import protocol as p
from ..media.pool import ANSWER_TIMEOUT_S, WorkerPool
from . import messages as cm
from .bus import Bus, Unavailable
from .keys import CALL_TTL_MS, call_key, media_channel
from .registry import NodeRegistry

log = structlog.get_logger("bargein.cluster")


class ClusterMedia:
    def __init__(self, bus: Bus, node: str, registry: NodeRegistry, local: WorkerPool,
                 leader: Callable[[], str | None] = lambda: None) -> None:
        self.bus, self.node, self.registry, self.local, self.leader = bus, node, registry, local, leader
        self.call_node: dict[str, str] = {}  # placed calls -> their node
        self.legs: dict[str, str] = {}  # leg -> call id (placed or being placed)
        self._placing: dict[str, asyncio.Future[str]] = {}
        self._held: dict[str, list[p.ToWorker]] = {}  # messages of a call being placed, in order
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}  # request -> (node, reply)
        self._recordings: dict[int, str] = {}  # recording id -> node
        self._requests = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.on_leg_lost: Callable[[str, str], None] = lambda leg, reason: None
        self.on_calls_lost: Callable[[list[str], str], None] = lambda calls, reason: None
        self.on_recording_failed: Callable[[int, str], None] = lambda rec_id, reason: None
        self.on_levels: Callable[[dict[str, dict[str, float]]], None] = lambda calls: None
        self.more_health: Callable[[], dict[str, Any]] = dict  # the node adds its own (the leader's snapshots)
        self.on_change: Callable[[], None] = lambda: None  # a placement changed (the leader's snapshot)

    @property
    def n(self) -> int:
        return self.local.n

    def attach(self, on_leg_lost: Callable[[str, str], None], on_calls_lost: Callable[[list[str], str], None]) -> None:
        self.on_leg_lost, self.on_calls_lost = on_leg_lost, on_calls_lost

    async def start(self) -> None:
        pass  # the cluster node starts the local pool and the bus

    async def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()

    # ------------------------------------------------------------------ placement
    def choose(self) -> str | None:
        """The live node (not draining) with the fewest legs; on a tie not the leader (it also runs the
        signaling core), then by name, so placement is predictable."""
        mine: dict[str, int] = {}
        for call_id in self.legs.values():
            if (node := self.call_node.get(call_id)) is not None:
                mine[node] = mine.get(node, 0) + 1
        live = self.registry.live()
        if not live:
            return None
        leader = self.leader()
        return min(live, key=lambda e: (mine.get(e.node, 0), e.legs, e.node == leader, e.node)).node

    async def place(self, call_id: str) -> str:
        """The node that hosts ``call_id``: ours if we take the lock, else the one whoever took it chose.
        Loads are read afresh (one round trip), so a node that started draining a moment ago is skipped."""
        await self.registry.read()
        node = self.choose()
        if node is None:
            raise Unavailable("no live media node")
        key = call_key(call_id)
        if await self.bus.run(lambda r: r.set(key, node, nx=True, px=CALL_TTL_MS)):
            log.info("cluster.call_placed", call_id=call_id, node=node)
            return node
        holder = await self.bus.run(lambda r: r.get(key))
        if holder is None:
            raise Unavailable(f"the placement of {call_id} lapsed while it was being decided")
        log.info("cluster.call_placed_elsewhere", call_id=call_id, node=holder, wanted=node)
        return holder

    async def _place_and_flush(self, call_id: str, fut: asyncio.Future[str]) -> None:
        try:
            node = await self.place(call_id)
        except Unavailable as exc:
            log.warning("cluster.call_not_placed", call_id=call_id, why=str(exc))
            self._placing.pop(call_id, None)
            self._held.pop(call_id, None)
            for leg in [leg for leg, c in self.legs.items() if c == call_id]:
                del self.legs[leg]
            fut.set_exception(MediaError(str(exc)))
            fut.exception()  # retrieved: an offer may never wait on it
            return
        self._placing.pop(call_id, None)
        self.call_node[call_id] = node
        self.on_change()  # before the call's messages go: the snapshot ahead of them has the placement
        for msg in self._held.pop(call_id, []):
            self._send(node, msg)
        fut.set_result(node)
        if call_id not in self.legs.values():  # every leg left while it was placed
            self._forget(call_id)

    def _route(self, call_id: str, msg: p.ToWorker) -> None:
        """Send now if the call is placed, else hold it until it is."""
        node = self.call_node.get(call_id)
        if node is not None:
            self._send(node, msg)
        elif call_id in self._placing:
            self._held[call_id].append(msg)

    def _send(self, node: str, msg: p.ToWorker) -> None:
        msg = msg.model_copy(update={"worker": node})
        self.bus.post(media_channel(node), cm.ToNode(leader=self.node, message=msg).model_dump_json())

    # ------------------------------------------------------------------ the pool's interface
    def worker_of(self, call_id: str) -> str | None:
        """The node hosting the call."""
        return self.call_node.get(call_id)

    def add_leg(self, call_id: str, leg: str, routing: LegRouting) -> bool:
        if call_id not in self.call_node and call_id not in self._placing:
            fut = self._placing[call_id] = asyncio.get_running_loop().create_future()
            self._held[call_id] = []
            self._spawn(self._place_and_flush(call_id, fut))
        self.legs[leg] = call_id
        self._route(call_id, p.AddLeg(worker="?", call_id=call_id, leg=leg, routing=p.Routing.of(routing)))
        return True

    def update_leg(self, call_id: str, leg: str, routing: LegRouting) -> None:
        if self.legs.get(leg) == call_id:
            self._route(call_id, p.UpdateLeg(worker="?", call_id=call_id, leg=leg, routing=p.Routing.of(routing)))

    def remove_leg(self, call_id: str, leg: str) -> None:
        if self.legs.pop(leg, None) is None:
            return
        self._route(call_id, p.RemoveLeg(worker="?", call_id=call_id, leg=leg))
        if call_id in self.call_node and call_id not in self.legs.values():
            self._forget(call_id)

    def meter_call(self, call_id: str, on: bool) -> None:
        """Ask the call's node to measure (or stop measuring) who talks on it (``NOTIFY levels``)."""
        if call_id in self.legs.values():
            self._route(call_id, p.MeterCall(worker="?", call_id=call_id, on=on))

    def _forget(self, call_id: str) -> None:
        """The call's last leg left: its placement ends (the key is deleted)."""
        self.call_node.pop(call_id, None)
        self.on_change()
        key = call_key(call_id)
        self._spawn(self._quietly(lambda r: r.delete(key)))

    async def answer(self, call_id: str, leg: str, sdp: str) -> str:
        placing = self._placing.get(call_id)
        if placing is not None:
            await placing  # MediaError when the call could not be placed
        node = self.call_node.get(call_id)
        if node is None or self.legs.get(leg) != call_id:
            raise MediaError("the leg has no media node")
        request = next(self._requests)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request] = (node, fut)
        self._send(node, p.Offer(worker=node, request=request, call_id=call_id, leg=leg, sdp=sdp))
        try:
            reply = await asyncio.wait_for(fut, ANSWER_TIMEOUT_S)
        except TimeoutError as exc:
            raise MediaError(f"media node {node} did not answer in {ANSWER_TIMEOUT_S:g} s") from exc
        finally:
            self._pending.pop(request, None)
        if isinstance(reply, p.Refused):
            raise MediaError(reply.reason)
        return reply.sdp

    def start_recording(self, call_id: str, rec_id: int, path: str, channels: tuple[bool, bool]) -> str | None:
        node = self.call_node.get(call_id)
        if node is None:
            return "the call has no media node"
        self._recordings[rec_id] = node
        self._send(node, p.StartRecording(worker=node, call_id=call_id, rec_id=rec_id, path=path, channels=channels))
        return None

    def stop_recording(self, rec_id: int) -> None:
        node = self._recordings.pop(rec_id, None)
        if node is not None:
            self._send(node, p.StopRecording(worker=node, call_id="", rec_id=rec_id))

    async def stats(self, per_leg: bool = False) -> list[p.Stats]:
        return await self.local.stats(per_leg)

    async def health(self) -> dict[str, Any]:
        """This node's own media (its workers), and the cluster as its registry sees it."""
        return {**await self.local.health(),
                "cluster": {"node": self.node, "leader": self.leader(),
                            "redis": "up" if self.bus.available else self.bus.why_down,
                            "calls_placed": len(self.call_node), **self.more_health(),
                            "nodes": [e.model_dump() for e in sorted(self.registry.nodes.values(),
                                                                     key=lambda e: e.node)]}}

    def collector(self) -> _ClusterCollector:
        return _ClusterCollector(self)

    # ------------------------------------------------------------------ replies and failures
    def on_reply(self, payload: str) -> None:
        try:
            env = cm.FROM_NODE.validate_json(payload)
        except ValidationError as exc:
            log.error("cluster.bad_media_reply", error=str(exc)[:300])
            return
        msg = env.message
        if isinstance(msg, p.Answer | p.Refused | p.Stats) and msg.request is not None:
            node, fut = self._pending.get(msg.request, (None, None))
            if fut is not None and node == env.node and not fut.done():
                fut.set_result(msg)
        elif isinstance(msg, p.LegLost):
            if self.legs.get(msg.leg) == msg.call_id and self.call_node.get(msg.call_id) == env.node:
                log.info("cluster.leg_lost", node=env.node, call_id=msg.call_id, leg=msg.leg, why=msg.reason)
                self.on_leg_lost(msg.leg, msg.reason)
        elif isinstance(msg, p.LegLevels):
            calls = {c: levels for c, levels in msg.calls.items() if self.call_node.get(c) == env.node}
            if calls:
                self.on_levels(calls)
        elif isinstance(msg, p.RecordingFailed):
            if self._recordings.pop(msg.rec_id, None) is not None:
                self.on_recording_failed(msg.rec_id, msg.reason)
        elif isinstance(msg, cm.CallsLost):
            calls = [c for c in msg.call_ids if self.call_node.get(c) == env.node]
            self._lose(calls, msg.reason)

    def node_lost(self, node: str, reason: str) -> None:
        """A node died: its calls end for everyone, wherever they are connected."""
        for n, fut in list(self._pending.values()):
            if n == node and not fut.done():
                fut.set_exception(MediaError(reason))
        for rec_id in [r for r, n in self._recordings.items() if n == node]:
            del self._recordings[rec_id]
            self.on_recording_failed(rec_id, f"the recording stopped: {reason}")
        self._lose([c for c, n in self.call_node.items() if n == node], reason)

    def _lose(self, calls: list[str], reason: str) -> None:
        if not calls:
            return
        for call_id in calls:
            for leg in [leg for leg, c in self.legs.items() if c == call_id]:
                del self.legs[leg]
            self._forget(call_id)
        log.error("cluster.calls_lost", calls=calls, why=reason)
        self.on_calls_lost(calls, reason)

    async def refresh(self) -> None:
        """Keep the placement keys of the calls this leader leads (put back after Redis restarts empty)."""
        placed = dict(self.call_node)
        if not placed:
            return

        async def put(r: Any) -> Any:
            async with r.pipeline(transaction=False) as pipe:
                for call_id, node in placed.items():
                    pipe.set(call_key(call_id), node, px=CALL_TTL_MS)
                return await pipe.execute()
        await self.bus.run(put)

    def state(self) -> dict[str, Any]:
        """Where the placed calls run (for a successor: :mod:`.handover`)."""
        return {"call_node": dict(self.call_node), "recordings": dict(self._recordings),
                "legs": {leg: c for leg, c in self.legs.items() if c in self.call_node}}

    def restore(self, state: dict[str, Any], live: set[str]) -> dict[str, list[str]]:
        """Take over a predecessor's placements; returns the calls on nodes not in ``live``, by node."""
        self.call_node.update(state["call_node"])
        self.legs.update(state["legs"])
        self._recordings.update(state["recordings"])
        gone: dict[str, list[str]] = {}
        for call_id, node in self.call_node.items():
            if node not in live:
                gone.setdefault(node, []).append(call_id)
        log.info("cluster.placements_taken_over", calls=len(self.call_node), legs=len(self.legs),
                 on_lost_nodes=sum(map(len, gone.values())))
        return gone

    def reset(self) -> None:
        """This node stopped leading: forget every placement (the nodes drop those calls themselves)."""
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(MediaError("this node stopped leading the cluster"))
        self.call_node.clear()
        self.legs.clear()
        self._held.clear()
        self._recordings.clear()

    async def _quietly(self, op: Callable[[Any], Any]) -> None:
        try:
            await self.bus.run(op)
        except Exception:  # Redis down or closing: the key lapses on its own
            pass

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _ClusterCollector:
    """The local workers' metrics plus the cluster's nodes."""

    def __init__(self, media: ClusterMedia) -> None:
        self.media, self.local = media, media.local.collector()

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        yield from self.local.collect()
        nodes = GaugeMetricFamily("bargein_cluster_nodes", "Live nodes in the cluster (as this node last read)")
        nodes.add_metric([], len(self.media.registry.nodes))
        yield nodes
        placed = GaugeMetricFamily("bargein_cluster_calls_placed", "Calls this node placed (as leader)")
        placed.add_metric([], len(self.media.call_node))
        yield placed
