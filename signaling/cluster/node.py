"""One node of a cluster, put together: a service of the node's :class:`BargeinServer` that joins it to
the others through Redis (registry, leadership, signaling relay, media placement and hosting).

Every node serves clients and hosts media; the leader also runs the signaling core and keeps a snapshot
of its state in Redis (:mod:`.handover`). A node that takes the lead loads it: sessions whose socket is
on a live node and calls whose media runs on a live node go on; the rest end with a reason
(docs/architecture.md, "Cluster").

SIGTERM drains the node: it takes no new calls (and never takes the lead), and exits when the calls it
hosts have ended (as leader: every call of the cluster) or after ``drain_grace_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog
from aiohttp import web

from ..media.pool import WorkerPool
from ..settings import Settings
from . import messages as cm
from .bus import Bus, Unavailable
from .handover import CODE, Handover, Snapshot, contact_state, core_state, dumps, install, loads
from .keys import HEARTBEAT_S, media_channel, media_reply_channel, signal_channel
from .leader import Leadership
from .media import ClusterMedia
from .media_host import MediaHost
from .registry import NodeRegistry
from .relay import EdgeRelay, LeaderRelay, parse_signal

if TYPE_CHECKING:
    from ..core import SignalingCore
    from ..server import BargeinServer

log = structlog.get_logger("bargein.cluster")
FORWARDED = "X-Bargein-Forwarded"  # an API request already forwarded once is answered where it lands


class ClusterNode:
    def __init__(self, settings: Settings, pool: WorkerPool) -> None:
        assert settings.redis_url is not None
        self.settings = settings
        self.node = settings.node_id or f"{settings.host}:{settings.port}"
        self.url = settings.public_url or f"http://{settings.host}:{settings.port}"
        self.boot = secrets.token_hex(4)
        self.bus = Bus(settings.redis_url, self.node)
        self.pool = pool
        recordings = (settings.recordings_dir or settings.data_dir / "recordings").resolve()
        self.host = MediaHost(self.bus, self.node, pool, recordings)
        self.registry = NodeRegistry(self.bus, self.node, self.url, self.boot, self.host.load)
        self.leadership = Leadership(self.bus, self.node)
        self.media = ClusterMedia(self.bus, self.node, self.registry, pool, lambda: self.leadership.leader)
        self.handover = Handover(self.bus, self.node, self.boot)
        self.draining = False
        self.server: BargeinServer | None = None
        self.edge: EdgeRelay | None = None
        self.leader_relay: LeaderRelay | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    # ------------------------------------------------------------------ service
    async def start(self, server: BargeinServer) -> None:
        self.server = server
        self.edge = EdgeRelay(self.bus, self.node, lambda: self.leadership.leader, server)
        self.leader_relay = LeaderRelay(self.bus, self.node, server)
        server.relay = self
        server.conn_suffix = f"@{self.node}.{self.boot}"
        server.api_forward = self.forward
        server.state_changed = self.handover.changed
        self.handover.take = self._snapshot
        self.media.on_change = self.handover.changed
        self.media.more_health = lambda: {"snapshots": {
            "written": self.handover.written, "failed": self.handover.failed, "last_bytes": self.handover.last_bytes,
            "last_ms": round(1000 * self.handover.cost_s, 2)}}
        self.bus.subscribe(signal_channel(self.node), self._on_signal)
        self.bus.subscribe(media_channel(self.node), self.host.on_message)
        self.bus.subscribe(media_reply_channel(self.node), self.media.on_reply)
        self.registry.on_lost = self._node_lost
        self.leadership.on_change = self._leader_changed
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        await self.pool.start()
        self.bus.start()
        with contextlib.suppress(Unavailable):  # Redis down at start: the loops keep trying
            await self.registry.beat()
            await self.registry.scan()
            await self.leadership.step()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(c, name=f"bargein-cluster-{n}") for n, c in (
            ("registry", self.registry.run()), ("leader", self.leadership.run()), ("duties", self._duties()),
            ("orphans", self.host.watch()), ("handover", self.handover.run()))]
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, self.drain)  # replaces aiohttp's: drain first, then exit
        log.info("cluster.node_started", node=self.node, url=self.url, boot=self.boot, leader=self.leadership.leader,
                 redis=self.bus.url)

    async def stop(self) -> None:
        if self.handover.leading:  # the last state, for whoever leads next
            self.handover.leading = False
            with contextlib.suppress(Unavailable):
                await self.handover.write(self._snapshot())
        with contextlib.suppress(Unavailable):
            await self.leadership.release()
        with contextlib.suppress(Unavailable):
            await self.registry.leave()
        await self.bus.flush()
        for t in self._tasks:
            t.cancel()
        if self.leader_relay is not None:
            await self.leader_relay.close()
        await self.media.close()
        await self.pool.close()
        if self._http is not None:
            await self._http.close()
        await self.bus.close()
        log.info("cluster.node_stopped", node=self.node)

    async def _duties(self) -> None:
        """The leader's each second: keep its calls' placement keys."""
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            if self.leadership.is_leader:
                with contextlib.suppress(Unavailable):
                    await self.media.refresh()

    # ------------------------------------------------------------------ the server's relay
    def relays(self) -> bool:
        return not self.leadership.is_leader

    async def open(self, conn: str, remote: str) -> None:
        assert self.edge is not None
        await self.edge.open(conn, remote)

    async def frame(self, conn: str, data: str) -> None:
        assert self.edge is not None
        await self.edge.frame(conn, data)

    async def close(self, conn: str) -> None:
        assert self.edge is not None
        with contextlib.suppress(Exception):  # at shutdown Redis may already be closed
            await self.edge.close(conn)

    def _on_signal(self, payload: str) -> None:
        msg = parse_signal(payload)
        if msg is None:
            return
        if isinstance(msg, cm.Deliver | cm.Close):
            assert self.edge is not None
            self.edge.on_deliver(msg)
        elif isinstance(msg, cm.Adopted):
            assert self.edge is not None
            self.edge.on_adopted(msg)
        elif self.leadership.is_leader:
            assert self.leader_relay is not None
            self.leader_relay.on_signal(msg)
        elif isinstance(msg, cm.Frame):  # sent to a leader that is no more: the edge learns it now
            self.bus.post(signal_channel(msg.node), cm.Close(
                conn=msg.conn, reason=f"node {self.node} no longer leads the cluster; sign in again").model_dump_json())

    # ------------------------------------------------------------------ changes
    def _leader_changed(self, old: str | None, new: str | None) -> None:
        assert self.edge is not None and self.server is not None and self.leader_relay is not None
        self.edge.leader_changed(old, new)
        self.host.leader_changed(new)
        if new == self.node:
            self.registry.judge = True
            self.leader_relay.hold()  # until the predecessor's sessions are adopted
            log.warning("cluster.leading", node=self.node, previous=old)
            asyncio.get_running_loop().create_task(self._take_over())
        elif old == self.node:
            self.registry.judge = self.handover.leading = False
            self.media.reset()
            relay = self.leader_relay
            asyncio.get_running_loop().create_task(self._step_down(relay, new))

    async def _step_down(self, relay: LeaderRelay, new: str | None) -> None:
        assert self.server is not None
        await relay.close()
        await self.server.reset_core(f"node {self.node} no longer leads the cluster (now: {new}); sign in again")

    def _snapshot(self) -> str:
        assert self.server is not None and self.leader_relay is not None
        core = self.server.core
        snap = Snapshot(leader=self.node, boot=self.boot, written=time.time(), core=core_state(core),
                        contacts=contact_state(self.server.contacts), media=self.media.state(),
                        relayed=self.leader_relay.edges())
        return dumps(snap, core, self.server.contacts)

    async def _load_snapshot(self) -> Snapshot | None:
        assert self.server is not None
        try:
            text = await self.handover.load()
            if text is None:
                log.warning("cluster.no_snapshot", node=self.node)
                return None
            snap = loads(text, self.server.core, self.server.contacts)
        except Unavailable:
            log.error("cluster.snapshot_unavailable", node=self.node, why=self.bus.why_down)
            return None
        except Exception as exc:  # another version's snapshot, or damaged: start empty
            log.error("cluster.snapshot_unreadable", node=self.node, error=f"{type(exc).__name__}: {exc}")
            return None
        if snap.code != CODE:
            log.error("cluster.snapshot_unreadable", node=self.node, error=f"written by {snap.code}, this is {CODE}")
            return None
        return snap

    async def _take_over(self) -> None:
        """Lead with the predecessor's state: keep what still has a live node, end the rest with a reason."""
        assert self.server is not None and self.leader_relay is not None
        relay = self.leader_relay
        try:
            snap = await self._load_snapshot()
            with contextlib.suppress(Unavailable):
                await self.registry.read()
            nodes = self.registry.nodes  # live, draining or not
            prev = snap.leader if snap is not None else "the previous leader"
            reason = (f"the signaling leader {prev} was lost and this session was not in the state it handed "
                      f"over; sign in again")
            kept: dict[str, str] = {}

            def adopt(core: SignalingCore) -> list[str]:
                if snap is None:
                    return []
                install(core, self.server.contacts, snap)  # type: ignore[union-attr]
                lost = []
                for conn in core.conns:
                    edge = snap.relayed.get(conn)
                    e = nodes.get(edge or "")
                    if e is not None and conn.endswith(f"@{e.node}.{e.boot}"):  # the same process still holds it
                        kept[conn] = e.node
                        relay.adopt(conn, e.node)
                    else:
                        lost.append(conn)
                return lost
            # placements first: the calls that end as their sessions are dropped remove their legs
            gone = self.media.restore(snap.media, set(nodes)) if snap is not None else {}
            await self.server.take_over(adopt)
            for node in nodes:  # every edge learns which of its sessions go on
                self.bus.post(signal_channel(node), cm.Adopted(
                    leader=self.node, conns=[c for c, e in kept.items() if e == node], reason=reason).model_dump_json())
            for node in gone:
                self.media.node_lost(node, f"node {node} lost")
            with contextlib.suppress(Unavailable):
                await self.media.refresh()
            log.warning("cluster.took_over", node=self.node, previous=prev, sessions_kept=len(kept),
                        calls=len(self.server.core.calls), calls_lost=sum(map(len, gone.values())),
                        snapshot_age_s=round(time.time() - snap.written, 3) if snap is not None else None)
        finally:
            relay.release()
            if self.leadership.is_leader:
                self.handover.leading = True
                self.handover.changed()

    def _node_lost(self, node: str, reason: str) -> None:
        if not self.leadership.is_leader:
            return
        assert self.leader_relay is not None
        self.leader_relay.node_lost(node, reason)
        self.media.node_lost(node, reason)

    # ------------------------------------------------------------------ draining
    def drain(self) -> None:
        if self.draining:
            return
        self.draining = self.registry.draining = True
        self.leadership.may_lead = False
        log.warning("cluster.draining", node=self.node, grace_s=self.settings.drain_grace_s,
                    calls=len(self.host.calls), leader=self.leadership.is_leader)
        asyncio.get_running_loop().create_task(self._drain_then_exit())

    def _busy(self) -> bool:
        core_calls = self.server is not None and self.leadership.is_leader and bool(self.server.core.calls)
        return self.host.busy() or core_calls

    async def _drain_then_exit(self) -> None:
        with contextlib.suppress(Unavailable):
            await self.registry.beat()  # no new calls from now on
        deadline = time.monotonic() + self.settings.drain_grace_s
        while self._busy() and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        log.warning("cluster.drained", node=self.node, calls_left=len(self.host.calls))
        os.kill(os.getpid(), signal.SIGINT)  # aiohttp's graceful exit

    # ------------------------------------------------------------------ the supervisor API
    async def forward(self, request: web.Request) -> web.Response | None:
        """Views of live state come from the leader's core: a node that does not lead asks it."""
        if self.leadership.is_leader or request.headers.get(FORWARDED):
            return None
        leader = self.leadership.leader
        entry = self.registry.nodes.get(leader or "")
        if entry is None or self._http is None:
            return web.json_response({"status": 503, "reason": "cluster unavailable: no signaling leader known"},
                                     status=503)
        headers = {FORWARDED: self.node}
        if (auth := request.headers.get("Authorization")) is not None:
            headers["Authorization"] = auth
        try:
            async with self._http.get(entry.url + request.path_qs, headers=headers) as resp:
                return web.Response(body=await resp.read(), status=resp.status, content_type=resp.content_type)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return web.json_response({"status": 503, "reason": f"cluster unavailable: the leader {leader} did not "
                                      f"answer ({type(exc).__name__})"}, status=503)
