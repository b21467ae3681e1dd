"""Every node's side of the cluster's media: the calls the leader placed here run on this node's own
media workers (:class:`~bargein.signaling.media.pool.WorkerPool`), so their audio never leaves the node.

Leg messages arrive on ``bargein:media:<node>`` as the media worker messages, unchanged, and go to the
local pool; replies (answers, refusals, lost legs, calls lost with a dead worker, failed recordings) go
back on the leader's ``bargein:media-reply:<leader>``. A call is dropped here when its placement key
(``bargein:call:<id>``, refreshed by the leader) has been missing for ``ORPHAN_AFTER_S`` while Redis
answers (a leader that took over refreshes the keys of the calls it knows; replies go to it).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import structlog
from pydantic import ValidationError

from ..gateway import MediaError
from ..media import protocol as p
from ..media.pool import WorkerPool
from . import messages as cm
from .bus import Bus, Unavailable
from .keys import HEARTBEAT_S, ORPHAN_AFTER_S, call_key, media_reply_channel
from .registry import Load

log = structlog.get_logger("bargein.cluster")


class MediaHost:
    def __init__(self, bus: Bus, node: str, pool: WorkerPool, recordings_dir: Path | None = None) -> None:
        self.bus, self.node, self.pool = bus, node, pool
        self.recordings_dir = recordings_dir  # this node's mount of the shared storage (None: as the leader says)
        self.calls: dict[str, str] = {}  # call id -> the leader that placed it here
        self.legs: dict[str, str] = {}  # leg -> call id
        self.recordings: dict[int, str] = {}  # recording id -> leader
        self._missing: dict[str, float] = {}  # call id -> when its placement key was first seen missing
        self._cpu = (time.monotonic(), self._cpu_s())
        self._tasks: set[asyncio.Task[Any]] = set()
        pool.attach(self._leg_lost, self._calls_lost)
        pool.on_recording_failed = self._recording_failed
        pool.on_levels = self._levels

    # ------------------------------------------------------------------ load (for the registry)
    def _cpu_s(self) -> float:
        t = os.times()
        return t.user + t.system + sum(w.stats.cpu_s for w in self.pool.workers.values() if w.stats is not None)

    def load(self) -> Load:
        now, cpu = time.monotonic(), self._cpu_s()
        (then, before), self._cpu = self._cpu, (now, cpu)
        pct = 100.0 * max(0.0, cpu - before) / (now - then) if now > then else 0.0
        workers = self.pool.workers.values()
        return Load(calls=len(self.calls), legs=len(self.legs), cpu_pct=round(pct, 1),
                    deadline_misses=sum(w.stats.deadline_misses for w in workers if w.stats is not None)
                    + self.pool._dead_totals["deadline_misses"])

    # ------------------------------------------------------------------ from the leader
    def on_message(self, payload: str) -> None:
        try:
            env = cm.TO_NODE.validate_json(payload)
        except ValidationError as exc:
            log.error("cluster.bad_media_message", node=self.node, error=str(exc)[:300])
            return
        msg, leader = env.message, env.leader
        if isinstance(msg, p.AddLeg):
            self.calls[msg.call_id] = leader
            self.legs[msg.leg] = msg.call_id
            if not self.pool.add_leg(msg.call_id, msg.leg, msg.routing.to_mixer()):
                self._reply(leader, p.LegLost(worker=self.node, call_id=msg.call_id, leg=msg.leg,
                                              reason=f"no media worker on node {self.node}"))
        elif isinstance(msg, p.UpdateLeg):
            self.pool.update_leg(msg.call_id, msg.leg, msg.routing.to_mixer())
        elif isinstance(msg, p.RemoveLeg):
            self._remove(msg.call_id, msg.leg)
        elif isinstance(msg, p.MeterCall):
            self.pool.meter_call(msg.call_id, msg.on)
        elif isinstance(msg, p.Offer):
            self._spawn(self._answer(leader, msg))
        elif isinstance(msg, p.StatsRequest):
            self._spawn(self._stats(leader, msg))
        elif isinstance(msg, p.StartRecording):
            # the leader names the file under its own mount of the storage; the same name under ours
            path = msg.path if self.recordings_dir is None else str(self.recordings_dir / Path(msg.path).name)
            why_not = self.pool.start_recording(msg.call_id, msg.rec_id, path, msg.channels)
            if why_not is not None:
                self._reply(leader, p.RecordingFailed(worker=self.node, rec_id=msg.rec_id, reason=why_not))
            else:
                self.recordings[msg.rec_id] = leader
        elif isinstance(msg, p.StopRecording):
            self.recordings.pop(msg.rec_id, None)
            self.pool.stop_recording(msg.rec_id)

    def _remove(self, call_id: str, leg: str) -> None:
        self.legs.pop(leg, None)
        self.pool.remove_leg(call_id, leg)
        if call_id not in self.legs.values():
            self.calls.pop(call_id, None)
            self._missing.pop(call_id, None)

    async def _answer(self, leader: str, msg: p.Offer) -> None:
        try:
            sdp = await self.pool.answer(msg.call_id, msg.leg, msg.sdp)
        except MediaError as exc:
            self._reply(leader, p.Refused(worker=self.node, request=msg.request, leg=msg.leg, reason=str(exc)))
            return
        self._reply(leader, p.Answer(worker=self.node, request=msg.request, leg=msg.leg, sdp=sdp))

    async def _stats(self, leader: str, msg: p.StatsRequest) -> None:
        stats = await self.pool.stats(per_leg=msg.per_leg)
        self._reply(leader, summed(self.node, stats, msg.request))

    # ------------------------------------------------------------------ to the leader
    def _reply(self, leader: str, msg: Any) -> None:
        self.bus.post(media_reply_channel(leader), cm.FromNode(node=self.node, message=msg).model_dump_json())

    def _levels(self, calls: dict[str, dict[str, float]]) -> None:
        """Talking levels of supervised calls, to the leader of each (it tells their supervisors)."""
        by_leader: dict[str, dict[str, dict[str, float]]] = {}
        for call_id, levels in calls.items():
            if (leader := self.calls.get(call_id)) is not None:
                by_leader.setdefault(leader, {})[call_id] = levels
        for leader, mine in by_leader.items():
            self._reply(leader, p.LegLevels(worker=self.node, calls=mine))

    def _leg_lost(self, leg: str, reason: str) -> None:
        call_id = self.legs.get(leg)
        if call_id is not None and (leader := self.calls.get(call_id)) is not None:
            self._reply(leader, p.LegLost(worker=self.node, call_id=call_id, leg=leg, reason=reason))

    def _calls_lost(self, call_ids: list[str], reason: str) -> None:
        by_leader: dict[str, list[str]] = {}
        for call_id in call_ids:
            if (leader := self.calls.pop(call_id, None)) is not None:
                by_leader.setdefault(leader, []).append(call_id)
            for leg in [leg for leg, c in self.legs.items() if c == call_id]:
                del self.legs[leg]
        for leader, calls in by_leader.items():
            self._reply(leader, cm.CallsLost(worker=self.node, call_ids=calls, reason=f"{reason} on node {self.node}"))

    def _recording_failed(self, rec_id: int, reason: str) -> None:
        if (leader := self.recordings.pop(rec_id, None)) is not None:
            self._reply(leader, p.RecordingFailed(worker=self.node, rec_id=rec_id, reason=reason))

    # ------------------------------------------------------------------ calls nobody leads any more
    def drop(self, call_id: str, why: str) -> None:
        legs = [leg for leg, c in self.legs.items() if c == call_id]
        log.warning("cluster.call_dropped", node=self.node, call_id=call_id, legs=len(legs), why=why)
        for leg in legs:
            self._remove(call_id, leg)
        self.calls.pop(call_id, None)

    def leader_changed(self, new: str | None) -> None:
        """The new leader took over its predecessor's calls: replies go to it. A call it does not know
        (placed after the predecessor's last snapshot) loses its placement key and is dropped then."""
        if new is None:
            return  # not known yet
        for call_id in self.calls:
            self.calls[call_id] = new
        for rec_id in self.recordings:
            self.recordings[rec_id] = new

    async def check_orphans(self) -> None:
        calls = list(self.calls)
        if not calls:
            return
        holders = await self.bus.run(lambda r: r.mget([call_key(c) for c in calls]))
        now = time.monotonic()
        for call_id, holder in zip(calls, holders, strict=True):
            if holder == self.node:
                self._missing.pop(call_id, None)
            elif holder is not None:
                self.drop(call_id, f"the call is placed on node {holder}")
            elif now - self._missing.setdefault(call_id, now) >= ORPHAN_AFTER_S:
                self.drop(call_id, "its placement key lapsed (its leader is gone)")

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self.check_orphans()
            except Unavailable:
                self._missing.clear()  # absence counts only while Redis answers

    def busy(self) -> bool:
        return bool(self.calls)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def summed(node: str, stats: list[p.Stats], request: int | None = None) -> p.Stats:
    """One node's workers as one :class:`~bargein.signaling.media.protocol.Stats`."""
    def total(k: str) -> Any:
        return sum(getattr(s, k) for s in stats)
    frames_in: dict[str, int] | None = None
    inbound: dict[str, int] = {}
    for s in stats:
        if s.frames_in is not None:
            frames_in = {**(frames_in or {}), **s.frames_in}
        for k, v in s.inbound.items():
            inbound[k] = inbound.get(k, 0) + v
    return p.Stats(worker=node, request=request, pid=os.getpid(), calls=total("calls"), legs=total("legs"),
                   media_legs=total("media_legs"), ticks=max((s.ticks for s in stats), default=0),
                   deadline_misses=total("deadline_misses"), skipped_ticks=total("skipped_ticks"),
                   tick_ms_p50=max((s.tick_ms_p50 for s in stats), default=0.0),
                   tick_ms_p99=max((s.tick_ms_p99 for s in stats), default=0.0),
                   tick_ms_max=max((s.tick_ms_max for s in stats), default=0.0),
                   frames_missing=total("frames_missing"), frames_dropped=total("frames_dropped"),
                   frames_pushed=total("frames_pushed"), legs_lost=total("legs_lost"), cpu_s=total("cpu_s"),
                   frames_in=frames_in, inbound=inbound)
