"""The signaling side of the media workers: start them, place calls on them, route leg messages, and
replace a worker that dies.

A call lives on one worker with all its legs and supervisors: its first leg picks the worker that
carries the fewest legs, and the call stays there until its last leg leaves. Messages to one worker
travel over one ordered stream, so a leg is always added before its offer is answered and removed
after. When a worker's stream ends (the process died or broke the protocol) every call it hosted is
handed to ``on_calls_lost`` (the core ends them with a reason to every participant), pending offers
are refused, and a new worker is started in its place.

A worker that is alive but does not answer (stopped, or its event loop stuck) is treated the same way:
every worker pushes its stats each ``stats_every_s``, which is its heartbeat; one silent for longer
than ``heartbeat_timeout_s`` is killed (SIGKILL) and replaced, and its calls end as above.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from bargein.mixer.limits import CallLimits
from bargein.mixer.routing import LegRouting
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from pydantic import ValidationError

from ..gateway import MediaError
from ..jitter import INBOUND_COUNTERS
from . import protocol as p

log = structlog.get_logger("bargein.media.pool")

START_TIMEOUT_S = 60.0  # importing aiortc/numpy on a busy 2-core machine takes a few seconds
ANSWER_TIMEOUT_S = 30.0
STATS_TIMEOUT_S = 2.0
HEARTBEAT_TIMEOUT_S = 5.0  # a worker pushes stats every second: five missed in a row and it is hung
WORKER_DIED = "media worker failed"
DEAD_COUNTERS = ("deadline_misses", "frames_missing", "frames_dropped", "legs_lost")


def default_workers() -> int:
    """One worker per core this process may run on."""
    with contextlib.suppress(AttributeError):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@dataclass
class WorkerHandle:
    id: str
    proc: asyncio.subprocess.Process
    writer: asyncio.StreamWriter
    reader: asyncio.StreamReader
    hello: p.Hello | None = None
    legs: dict[str, str] = field(default_factory=dict)  # core leg -> call id
    calls: dict[str, int] = field(default_factory=dict)  # call id -> legs it has here
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    stats: p.Stats | None = None
    task: asyncio.Task[None] | None = None
    recordings: dict[int, str] = field(default_factory=dict)  # recording id -> call id
    heard: float = field(default_factory=time.monotonic)  # when its last message arrived (its heartbeat)

    def send(self, msg: p._Message) -> None:
        if not self.writer.is_closing():
            self.writer.write(p.encode(msg))


class WorkerPool:
    """``n`` media worker processes. ``attach`` the callbacks, then ``await start()``."""

    def __init__(self, n: int, *, mixer_rate: int = 48000, limits: CallLimits | None = None,
                 silent_peer_s: float = 5.0, connect_grace_s: float = 20.0, stats_every_s: float = 1.0,
                 heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S, log_level: str | None = None,
                 **tuning: Any) -> None:
        if n < 1:
            raise ValueError("a worker pool needs at least one worker")
        if heartbeat_timeout_s <= 2 * stats_every_s:
            raise ValueError(f"heartbeat_timeout_s ({heartbeat_timeout_s:g}) must exceed two stats periods "
                             f"(stats_every_s={stats_every_s:g})")
        self.n = n
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.hung = 0  # workers killed because they stopped answering
        # tuning: WorkerConfig's loop / encode_inline; BARGEIN_MEDIA_LOOP=asyncio and BARGEIN_MEDIA_ENCODE=thread
        # give the plain set-up for comparisons (benchmarks, profiles)
        tuning.setdefault("loop", os.environ.get("BARGEIN_MEDIA_LOOP", "uvloop"))
        tuning.setdefault("encode_inline", os.environ.get("BARGEIN_MEDIA_ENCODE", "inline") != "thread")
        self._config = dict(mixer_rate=mixer_rate, limits=limits or CallLimits(), silent_peer_s=silent_peer_s,
                            connect_grace_s=connect_grace_s, stats_every_s=stats_every_s, **tuning)
        p.WorkerConfig(worker="check", **self._config)  # bad tuning fails here, not in every worker
        self.log_level = log_level or os.environ.get("BARGEIN_LOG_LEVEL", "INFO")
        self.workers: dict[str, WorkerHandle] = {}
        self.call_worker: dict[str, str] = {}
        self.replaced = 0  # workers started to replace dead ones
        self._ids = itertools.count(1)
        self._requests = itertools.count(1)
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        # counters of workers that died: totals never go down when a worker is replaced
        self._dead_totals = dict.fromkeys(DEAD_COUNTERS, 0)
        self._dead_inbound = dict.fromkeys(INBOUND_COUNTERS, 0)
        self.on_leg_lost: Callable[[str, str], None] = lambda leg, reason: None
        self.on_calls_lost: Callable[[list[str], str], None] = lambda calls, reason: None
        self.on_recording_failed: Callable[[int, str], None] = lambda rec_id, reason: None
        self.on_levels: Callable[[dict[str, dict[str, float]]], None] = lambda calls: None

    def attach(self, on_leg_lost: Callable[[str, str], None], on_calls_lost: Callable[[list[str], str], None]) -> None:
        self.on_leg_lost, self.on_calls_lost = on_leg_lost, on_calls_lost

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await asyncio.gather(*(self._spawn() for _ in range(self.n)))
        self._spawn_task(self._watch())
        log.info("media.pool_started", workers=sorted(self.workers),
                 loops=sorted({w.hello.loop for w in self.workers.values() if w.hello}))

    async def _spawn(self) -> WorkerHandle:
        wid = f"w{next(self._ids)}"
        config = p.WorkerConfig(worker=wid, **self._config)  # type: ignore[arg-type]
        parent, child = socket.socketpair()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bargein.signaling.media.worker", "--fd", str(child.fileno()),
                "--config", config.model_dump_json(), "--log-level", self.log_level,
                pass_fds=(child.fileno(),), stdin=asyncio.subprocess.DEVNULL)
        finally:
            child.close()  # the worker holds its end; ours closing lets EOF mean "the worker is gone"
        reader, writer = await asyncio.open_connection(sock=parent, limit=p.MAX_FRAME + 16)
        w = WorkerHandle(wid, proc, writer, reader)
        ready: asyncio.Future[p.Hello] = asyncio.get_running_loop().create_future()
        w.pending[0] = ready
        w.task = asyncio.get_running_loop().create_task(self._read(w), name=f"bargein-media-{wid}")
        try:
            await asyncio.wait_for(ready, START_TIMEOUT_S)
        except (TimeoutError, MediaError) as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise RuntimeError(f"media worker {wid} did not start: {exc!r}") from exc
        self.workers[wid] = w
        return w

    async def close(self) -> None:
        self._closing = True
        for t in list(self._tasks):
            t.cancel()
        for w in list(self.workers.values()):
            w.send(p.Shutdown(worker=w.id))
        for w in list(self.workers.values()):
            try:
                await asyncio.wait_for(w.proc.wait(), 5.0)
            except TimeoutError:
                w.proc.kill()
                await w.proc.wait()
            if w.task is not None:
                w.task.cancel()
            w.writer.close()
        self.workers.clear()

    # ------------------------------------------------------------------ reading a worker
    async def _read(self, w: WorkerHandle) -> None:
        why = "its connection closed"
        try:
            while (frame := await p.read_frame(w.reader)) is not None:
                w.heard = time.monotonic()
                try:
                    msg = p.FROM_WORKER.validate_json(frame)
                except ValidationError as exc:
                    log.error("media.bad_message", worker=w.id, error=str(exc))
                    continue
                self._on_message(w, msg)
        except (p.FrameError, ConnectionError) as exc:
            why = f"broken stream: {exc}"
        except asyncio.CancelledError:
            return
        self._gone(w, why)

    def _on_message(self, w: WorkerHandle, msg: p.FromWorker) -> None:
        if isinstance(msg, p.Hello):
            w.hello = msg
            self._resolve(w, 0, msg)
        elif isinstance(msg, p.Answer | p.Refused):
            self._resolve(w, msg.request, msg)
        elif isinstance(msg, p.Stats):
            w.stats = msg
            if msg.request is not None:
                self._resolve(w, msg.request, msg)
        elif isinstance(msg, p.LegLevels):
            self.on_levels({call: levels for call, levels in msg.calls.items() if call in w.calls})
        elif isinstance(msg, p.RecordingFailed):
            if w.recordings.pop(msg.rec_id, None) is not None:
                self.on_recording_failed(msg.rec_id, msg.reason)
        elif isinstance(msg, p.LegLost):
            if msg.leg in w.legs:
                log.warning("media.leg_lost", worker=w.id, call_id=msg.call_id, leg=msg.leg, why=msg.reason)
                self.on_leg_lost(msg.leg, msg.reason)

    @staticmethod
    def _resolve(w: WorkerHandle, request: int, value: Any) -> None:
        fut = w.pending.pop(request, None)
        if fut is not None and not fut.done():
            fut.set_result(value)

    def _gone(self, w: WorkerHandle, why: str) -> None:
        """The worker is gone: end its calls, refuse what waited on it, start a replacement."""
        with contextlib.suppress(ProcessLookupError):
            w.proc.kill()  # a worker that broke the protocol may still be running
        for fut in w.pending.values():
            if not fut.done():
                fut.set_exception(MediaError(WORKER_DIED))
        w.pending.clear()
        if self._closing or self.workers.get(w.id) is not w:
            return
        del self.workers[w.id]
        if w.stats is not None:
            for k in self._dead_totals:
                self._dead_totals[k] += getattr(w.stats, k)
            for k in self._dead_inbound:
                self._dead_inbound[k] += w.stats.inbound.get(k, 0)
        calls = list(w.calls)
        for call in calls:
            self.call_worker.pop(call, None)
        log.error("media.worker_died", worker=w.id, pid=w.proc.pid, why=why, calls=len(calls), legs=len(w.legs))
        for rec_id in list(w.recordings):
            self.on_recording_failed(rec_id, f"the recording stopped: {WORKER_DIED}")
        w.recordings.clear()
        self._spawn_task(self._reap(w))
        self._spawn_task(self._replace(w.id))
        if calls:
            self.on_calls_lost(calls, WORKER_DIED)

    async def _watch(self) -> None:
        """Kill and replace a worker whose heartbeat (its pushed stats) stopped: it is alive but hung."""
        every = min(1.0, self.heartbeat_timeout_s / 4)
        while not self._closing:
            woke = time.monotonic() + every
            await asyncio.sleep(every)
            now = time.monotonic()
            if now - woke > every:
                # our own loop stalled: the workers' messages wait unread in their sockets, so a long
                # silence now says nothing about them; judge again once the readers have caught up
                continue
            for w in list(self.workers.values()):
                silent = now - w.heard
                if silent > self.heartbeat_timeout_s:
                    log.error("media.worker_hung", worker=w.id, pid=w.proc.pid, silent_s=round(silent, 1),
                              timeout_s=self.heartbeat_timeout_s)
                    self.hung += 1
                    self._gone(w, f"no heartbeat for {silent:.1f} s")  # SIGKILL, end its calls, replace it

    async def _reap(self, w: WorkerHandle) -> None:
        await w.proc.wait()
        w.writer.close()
        log.info("media.worker_reaped", worker=w.id, returncode=w.proc.returncode)

    async def _replace(self, dead: str) -> None:
        while not self._closing and len(self.workers) < self.n:
            try:
                new = await self._spawn()
            except RuntimeError as exc:
                log.error("media.worker_restart_failed", replacing=dead, error=str(exc))
                await asyncio.sleep(1.0)
                continue
            self.replaced += 1
            log.info("media.worker_replaced", dead=dead, new=new.id, pid=new.proc.pid)

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ legs
    def worker_of(self, call_id: str) -> str | None:
        return self.call_worker.get(call_id)

    def _place(self, call_id: str) -> WorkerHandle | None:
        wid = self.call_worker.get(call_id)
        if wid is not None:
            return self.workers.get(wid)
        ready = [w for w in self.workers.values() if w.hello is not None]
        if not ready:
            return None
        w = min(ready, key=lambda w: (len(w.legs), len(w.calls)))
        self.call_worker[call_id] = w.id
        return w

    def add_leg(self, call_id: str, leg: str, routing: LegRouting) -> bool:
        """Place the leg (with its call) on a worker; False when no worker is up to take it."""
        w = self._place(call_id)
        if w is None:
            log.error("media.no_worker", call_id=call_id, leg=leg)
            return False
        w.legs[leg] = call_id
        w.calls[call_id] = w.calls.get(call_id, 0) + 1
        w.send(p.AddLeg(worker=w.id, call_id=call_id, leg=leg, routing=p.Routing.of(routing)))
        return True

    def _host(self, leg: str) -> WorkerHandle | None:
        for w in self.workers.values():
            if leg in w.legs:
                return w
        return None

    def update_leg(self, call_id: str, leg: str, routing: LegRouting) -> None:
        w = self.workers.get(self.call_worker.get(call_id, ""))
        if w is not None and leg in w.legs:
            w.send(p.UpdateLeg(worker=w.id, call_id=call_id, leg=leg, routing=p.Routing.of(routing)))

    def remove_leg(self, call_id: str, leg: str) -> None:
        w = self.workers.get(self.call_worker.get(call_id, "")) or self._host(leg)
        if w is None or leg not in w.legs:
            return
        del w.legs[leg]
        w.calls[call_id] -= 1
        if w.calls[call_id] <= 0:  # the call's last leg: the call may be placed afresh
            del w.calls[call_id]
            self.call_worker.pop(call_id, None)
        w.send(p.RemoveLeg(worker=w.id, call_id=call_id, leg=leg))

    def meter_call(self, call_id: str, on: bool) -> None:
        """Ask the call's worker to measure (or stop measuring) who talks on it."""
        w = self.workers.get(self.call_worker.get(call_id, ""))
        if w is not None:
            w.send(p.MeterCall(worker=w.id, call_id=call_id, on=on))

    # ------------------------------------------------------------------ recordings
    def start_recording(self, call_id: str, rec_id: int, path: str, channels: tuple[bool, bool]) -> str | None:
        """Ask the call's worker to record it; returns why not (no worker has the call), or None."""
        w = self.workers.get(self.call_worker.get(call_id, ""))
        if w is None:
            return "the call has no media worker"
        w.recordings[rec_id] = call_id
        w.send(p.StartRecording(worker=w.id, call_id=call_id, rec_id=rec_id, path=path, channels=channels))
        return None

    def stop_recording(self, rec_id: int) -> None:
        for w in self.workers.values():
            call_id = w.recordings.pop(rec_id, None)
            if call_id is not None:
                w.send(p.StopRecording(worker=w.id, call_id=call_id, rec_id=rec_id))
                return

    async def answer(self, call_id: str, leg: str, sdp: str) -> str:
        """The SDP answer for a leg's offer; MediaError when refused or the worker died."""
        w = self.workers.get(self.call_worker.get(call_id, ""))
        if w is None or leg not in w.legs:
            raise MediaError("the leg has no media worker")
        request = next(self._requests)
        fut: asyncio.Future[p.Answer | p.Refused] = asyncio.get_running_loop().create_future()
        w.pending[request] = fut
        w.send(p.Offer(worker=w.id, request=request, call_id=call_id, leg=leg, sdp=sdp))
        try:
            reply = await asyncio.wait_for(fut, ANSWER_TIMEOUT_S)
        except TimeoutError as exc:
            w.pending.pop(request, None)
            raise MediaError(f"media worker {w.id} did not answer in {ANSWER_TIMEOUT_S:g} s") from exc
        if isinstance(reply, p.Refused):
            raise MediaError(reply.reason)
        return reply.sdp

    # ------------------------------------------------------------------ stats
    async def stats(self, per_leg: bool = False) -> list[p.Stats]:
        """Fresh stats of every live worker (the last pushed ones for a worker that does not answer)."""
        async def one(w: WorkerHandle) -> p.Stats | None:
            request = next(self._requests)
            fut: asyncio.Future[p.Stats] = asyncio.get_running_loop().create_future()
            w.pending[request] = fut
            w.send(p.StatsRequest(worker=w.id, request=request, per_leg=per_leg))
            try:
                return await asyncio.wait_for(fut, STATS_TIMEOUT_S)
            except (TimeoutError, MediaError):
                w.pending.pop(request, None)
                return w.stats
        got = await asyncio.gather(*(one(w) for w in list(self.workers.values())))
        return [s for s in got if s is not None]

    async def health(self) -> dict[str, Any]:
        """The ``mixer`` and ``inbound`` blocks of /healthz summed over workers (counters include workers
        that died), and each worker's own figures (``media_workers.workers``)."""
        stats = await self.stats()
        total = {k: sum(getattr(s, k) for s in stats) for k in
                 ("calls", "legs", "media_legs", "deadline_misses", "skipped_ticks", "frames_missing",
                  "frames_dropped", "frames_pushed", "legs_lost")}
        for k in DEAD_COUNTERS:
            total[k] += self._dead_totals[k]
        total["ticks"] = max((s.ticks for s in stats), default=0)
        total["rate"] = self._config["mixer_rate"]
        total["tick_ms"] = {"p50": max((s.tick_ms_p50 for s in stats), default=0.0),
                            "p99": max((s.tick_ms_p99 for s in stats), default=0.0),
                            "max": max((s.tick_ms_max for s in stats), default=0.0)}
        workers = [{"worker": s.worker, "pid": s.pid, "loop": self.workers[s.worker].hello.loop  # type: ignore[union-attr]
                    if s.worker in self.workers else None,
                    **s.model_dump(exclude={"type", "worker", "request", "pid", "frames_in"})} for s in stats]
        return {"mixer": total, "inbound": self.inbound_totals(stats),
                "media_workers": {"configured": self.n, "alive": len(self.workers), "replaced": self.replaced,
                                  "hung": self.hung, "workers": workers}}

    def inbound_totals(self, stats: list[p.Stats]) -> dict[str, int]:
        """The legs' inbound buffer counters summed over ``stats`` and the workers that died; the
        buffered frames (``depth``) and what the jitter asks to keep (``target``) of the live legs."""
        out = dict(self._dead_inbound)
        for s in stats:
            for k, v in s.inbound.items():
                out[k] = out.get(k, 0) + v
        return out

    def collector(self) -> _PoolCollector:
        return _PoolCollector(self)

    def kill(self, worker: str, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to a worker process (operators and tests); returns its pid."""
        w = self.workers[worker]
        os.kill(w.proc.pid, sig)
        return w.proc.pid


class _PoolCollector:
    """Prometheus view of the workers from their last pushed stats (a scrape never waits on a worker)."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool

    def describe(self) -> list[Any]:
        return []  # no fixed metric set to check at registration

    def collect(self) -> Iterator[Any]:
        pool = self.pool
        stats = [w.stats for w in pool.workers.values() if w.stats is not None]
        alive = GaugeMetricFamily("bargein_media_workers", "Media worker processes alive")
        alive.add_metric([], len(pool.workers))
        yield alive
        for name, value, doc in [("replaced", pool.replaced, "Media workers started to replace dead ones"),
                                 ("hung", pool.hung, "Media workers killed because their heartbeat stopped")]:
            c = CounterMetricFamily(f"bargein_media_workers_{name}", doc)
            c.add_metric([], value)
            yield c
        for name, attr, doc in [("calls", "calls", "Calls in the mixer"), ("legs", "legs", "Legs in the mixer")]:
            g = GaugeMetricFamily(f"bargein_mixer_{name}", f"{doc} (all workers)", labels=["worker"])
            for s in stats:
                g.add_metric([s.worker], getattr(s, attr))
            yield g
        for name, attr, doc in [
            ("ticks", "ticks", "Mixer ticks run"),
            ("deadline_misses", "deadline_misses", "Ticks that finished after their 20 ms deadline"),
            ("frames_missing", "frames_missing", "Input frames that were missing at their tick"),
            ("frames_dropped", "frames_dropped", "Input frames dropped because a leg's buffer was full"),
            ("cpu_seconds", "cpu_s", "CPU time of the media worker process"),
        ]:
            c = CounterMetricFamily(f"bargein_media_{name}", doc, labels=["worker"])
            for s in stats:
                c.add_metric([s.worker], getattr(s, attr))
            yield c
        # totals over every worker, those that died included (the in-process mixer's names)
        for k in DEAD_COUNTERS[:3]:
            c = CounterMetricFamily(f"bargein_mixer_{k}", f"{k.replace('_', ' ').capitalize()} (all media workers)")
            c.add_metric([], sum(getattr(s, k) for s in stats) + pool._dead_totals[k])
            yield c
        # the legs' adaptive inbound buffers, per worker and in total
        inbound = pool.inbound_totals(stats)
        for k in INBOUND_COUNTERS:
            doc = INBOUND_DOCS[k]
            per = CounterMetricFamily(f"bargein_media_inbound_{k}", f"{doc} (per media worker)", labels=["worker"])
            for s in stats:
                per.add_metric([s.worker], s.inbound.get(k, 0))
            yield per
            all_ = CounterMetricFamily(f"bargein_inbound_{k}", f"{doc} (all media workers)")
            all_.add_metric([], inbound.get(k, 0))
            yield all_
        for k, doc in [("depth", "Frames buffered in the legs' inbound buffers"),
                       ("target", "Frames the legs' measured arrival jitter asks their inbound buffers to keep")]:
            g = GaugeMetricFamily(f"bargein_media_inbound_{k}_frames", doc, labels=["worker"])
            for s in stats:
                g.add_metric([s.worker], s.inbound.get(k, 0))
            yield g
        tick = GaugeMetricFamily("bargein_media_tick_compute_ms", "Tick compute time percentiles (ms)",
                                 labels=["worker", "quantile"])
        for s in stats:
            tick.add_metric([s.worker, "0.5"], s.tick_ms_p50)
            tick.add_metric([s.worker, "0.99"], s.tick_ms_p99)
        yield tick


INBOUND_DOCS = {
    "received": "Frames received into the legs' inbound buffers",
    "played": "Frames played from the legs' inbound buffers into the mixer",
    "concealed": "Ticks a leg's inbound buffer answered with concealment (loss, late frame or gap)",
    "shrunk": "Frames dropped to bring a leg's inbound delay back to its target",
    "skipped": "Frames dropped at once because far more was buffered than the jitter needs",
    "late": "Frames that arrived after their turn (discarded)",
    "overflow": "Frames dropped because a leg's inbound buffer was full",
    "resyncs": "Times a leg's inbound timeline restarted",
}
