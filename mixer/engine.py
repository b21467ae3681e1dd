"""The batched conference mixer: every call's audio in preallocated arrays, mixed in one tick.

Layout: calls are kept in *pools* by their number of legs ``w`` (1..max_legs), so a 3-leg call costs
exactly 3 legs of memory traffic. In a pool, active calls occupy rows ``0..n-1`` (swap-remove on
leave); each row holds per-leg ring buffers of input frames, a ``w x w`` gain matrix from
:func:`mixer.routing.route`, and the last mixed output. A join or leave moves the call to the
neighbouring pool between ticks; capacity doubles when full, so growth has no per-tick cost.

The tick walks pools and cache-sized chunks of rows (never calls): gather each leg's next frame
(or a zero frame when it is missing), widen to float32, one batched matmul for the mix-minus,
then round, limit and clamp once to int16.
"""

from __future__ import annotations

import itertools
import resource
import threading
import time
from collections.abc import Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import structlog

from . import kernel as _kernel
from .frames import FrameError, check_frame, check_rate, samples_per_frame
from .limiter import LimiterKind, finish
from .limits import CallLimits, LimitError
from .realtime import OFF, RealtimePolicy, make_current_thread_realtime
from .roles import Role, SupervisorMode
from .routing import LegRouting, recording_gains, route

log = structlog.get_logger("bargein.mixer")

CallKey = Hashable
LegId = int

_CHUNK_BYTES = 1 << 20  # float32 scratch per chunk: fits in L2 with room for the gather buffer
_MIN_CAPACITY = 4
_STREAM_BYTES = 8 << 20  # a pool plane larger than this is written with non-temporal stores (does not fit in cache)
_SPLIT_ROWS = 64  # a pool is split over the worker threads only when each gets at least this many calls
_CHUNK_ROWS = 64  # calls per chunk of a split pool (~0.4 MB of 48 kHz input at 3 legs): little left to wait on


class UnknownLegError(KeyError):
    def __str__(self) -> str:
        return f"unknown leg {self.args[0]!r} (never added, or already removed)"


class UnknownCallError(KeyError):
    def __str__(self) -> str:
        return f"unknown call {self.args[0]!r}"


@dataclass(slots=True)
class _Carried:
    """Buffered input and counters of some legs of one call, carried when the call changes pool."""

    ring: np.ndarray  # (depth, k, n_samples)
    wr: np.ndarray  # (k,) frames written so far
    rd: np.ndarray  # (k,) frames read so far
    missing: np.ndarray  # (k,) ticks without a frame
    dropped: np.ndarray  # (k,) frames dropped on a full buffer


class _Pool:
    """All calls that have exactly ``w`` legs: their buffers, gains, outputs and per-leg counters.

    Every per-row array is grown, appended to and swap-removed here, in one place.
    """

    def __init__(self, w: int, depth: int, n_samples: int) -> None:
        self.w, self.depth, self.n_samples = w, depth, n_samples
        self.n = 0
        self.calls: list[CallKey] = []
        self._alloc(_MIN_CAPACITY)

    def _alloc(self, cap: int) -> None:
        w, d, ns = self.w, self.depth, self.n_samples
        old = getattr(self, "planes", None)
        # d planes of (cap, w) frames: a tick reads mostly-contiguous rows; last row is the zero frame
        ring = np.zeros((d * cap * w + 1, ns), dtype=np.int16)
        planes = ring[: d * cap * w].reshape(d, cap, w, ns)
        per_row = {
            "wr": np.zeros((cap, w), dtype=np.int64),
            "rd": np.zeros((cap, w), dtype=np.int64),
            "missing": np.zeros((cap, w), dtype=np.int64),
            "dropped": np.zeros((cap, w), dtype=np.int64),
            "src": np.zeros((cap, w), dtype=np.int64),  # address of a frame lent for this tick (0: none; see tick)
            "gains": np.zeros((cap, w, w), dtype=np.float32),
            "out": np.zeros((cap, w, ns), dtype=np.int16),
            "rec_id": np.full(cap, -1, dtype=np.int64),  # recording id of a recorded call, -1 = not recorded
            # rows 0 and 1: (left, right) x speaker; padded to w x w so the C mix kernel computes the tap too
            "rec_gains": np.zeros((cap, max(w, 2), w), dtype=np.float32),
        }
        # what every tick touches is faulted in now, not in a tick: plane 0 (steady state), the zero row, the outputs
        planes[0].fill(0)
        ring[-1].fill(0)
        per_row["out"].fill(0)
        if old is not None:
            planes[:, : self.n] = old[:, : self.n]
            for name, arr in per_row.items():
                arr[: self.n] = getattr(self, name)[: self.n]
        self.cap = cap
        self.ring, self.planes = ring, planes
        self.wr, self.rd = per_row["wr"], per_row["rd"]
        self.missing, self.dropped = per_row["missing"], per_row["dropped"]
        self.src = per_row["src"]
        self.gains, self.out = per_row["gains"], per_row["out"]
        self.rec_id, self.rec_gains = per_row["rec_id"], per_row["rec_gains"]
        self.rec_out = np.zeros((cap, 2, ns), dtype=np.int16)  # the C tick's recording frames (recorded rows only)
        self.zero_row = d * cap * w
        self.plane_stride = cap * w
        self.slot_base = np.arange(cap * w, dtype=np.int64).reshape(cap, w)
        self.stream = cap * w * ns * 2 > _STREAM_BYTES
        # the addresses the C kernel takes (kernel.POOL_ARRAYS order), computed once per allocation
        self.arrays = np.array([_kernel.address(getattr(self, name)) for name in _kernel.POOL_ARRAYS], np.int64)
        self.arrays_addr = _kernel.address(self.arrays)

    def _per_row(self) -> tuple[np.ndarray, ...]:
        return (self.wr, self.rd, self.missing, self.dropped, self.src, self.gains, self.out, self.rec_id,
                self.rec_gains)

    def append(self, call: CallKey, carried: _Carried, gains: np.ndarray) -> int:
        """Add ``call`` as the last row: its first legs take ``carried``, the others start empty."""
        if self.n == self.cap:
            self._alloc(self.cap * 2)
        row = self.n
        self.n += 1
        self.calls.append(call)
        self.planes[:, row] = 0
        for arr in self._per_row():
            arr[row] = 0
        self.rec_id[row] = -1
        k = carried.wr.shape[0]
        self.planes[:, row, :k] = carried.ring
        self.wr[row, :k], self.rd[row, :k] = carried.wr, carried.rd
        self.missing[row, :k], self.dropped[row, :k] = carried.missing, carried.dropped
        self.gains[row] = gains
        return row

    def carry(self, row: int, keep: list[int]) -> _Carried:
        """Copies of the buffers and counters of legs ``keep`` of ``row`` (indexing with a list copies)."""
        return _Carried(self.planes[:, row, keep], self.wr[row, keep], self.rd[row, keep], self.missing[row, keep],
                        self.dropped[row, keep])

    def remove(self, row: int) -> CallKey | None:
        """Swap-remove ``row``; return the call that moved into it (if any)."""
        last = self.n - 1
        moved = None
        if row != last:
            self.planes[:, row] = self.planes[:, last]
            for arr in self._per_row():
                arr[row] = arr[last]
            moved = self.calls[last]
            self.calls[row] = moved
        self.calls.pop()
        self.n = last
        return moved

    def totals(self) -> tuple[int, int]:
        """(frames missing, frames dropped) summed over the pool's current legs."""
        return int(self.missing[: self.n].sum()), int(self.dropped[: self.n].sum())

    @staticmethod
    def empty(depth: int, n_samples: int) -> _Carried:
        none = np.zeros(0, np.int64)
        return _Carried(np.zeros((depth, 0, n_samples), np.int16), none, none, none, none)


@dataclass(slots=True)
class _Call:
    legs: list[LegId] = field(default_factory=list)
    routing: list[LegRouting] = field(default_factory=list)
    row: int = -1  # row in pool len(legs)
    rec_id: int = -1  # recorded under this id (-1: not recorded)
    rec_channels: tuple[bool, bool] = (True, True)


@dataclass(frozen=True, slots=True)
class ShareTiming:
    """One thread's share of the last C tick: when it began after the split (ms), its wall and CPU time (ms),
    how often it was switched out against its will, its page faults. Wall well over CPU: it was not running."""

    start_ms: float
    wall_ms: float
    cpu_ms: float
    preempted: int
    faults: int
    chunks: int = 0  # chunks of calls it mixed (a thread that fell behind mixed fewer)


class OutputGather:
    """Where a fixed list of legs' mixes are, for :meth:`MixerEngine.gather`: located once and reused while the
    engine's layout stands (its ``routing_epoch``: every membership change moves it), so a caller that reads
    the same legs every tick (the WebRTC send plan) skips the per-tick lookups."""

    __slots__ = ("legs", "epoch", "parts", "addresses", "res")

    def __init__(self, legs: Iterable[LegId], n_samples: int) -> None:
        self.legs = list(legs)
        self.epoch = -1  # not located yet
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # (pool.out, sel, rows, slots)
        self.addresses = np.zeros(len(self.legs), np.int64)  # each leg's mix in memory (parts keep its array)
        self.res = np.empty((len(self.legs), n_samples), np.int16)


@dataclass(frozen=True, slots=True)
class MixerCounters:
    ticks: int
    frames_missing: int
    frames_dropped: int
    frames_pushed: int


class MixerEngine:
    """Batched conference mixer for many calls; see the module docstring for the layout."""

    def __init__(
        self,
        rate: int = 48000,
        limits: CallLimits | None = None,
        buffer_frames: int = 4,
        limiter: LimiterKind = "soft",
        kernel: Literal["auto", "c", "numpy"] = "auto",
        threads: int = 1,
        frame_samples: int | None = None,
        realtime: RealtimePolicy = OFF,
    ) -> None:
        """``frame_samples`` overrides the 20 ms frame length at ``rate`` (small frames keep tests fast).
        ``realtime`` schedules the ``threads - 1`` mix worker threads (see ``mixer/realtime.py``); the thread
        that calls :meth:`tick` is the caller's to schedule (``RealtimeClock(realtime=...)`` does)."""
        check_rate(rate)
        if not 1 <= buffer_frames <= 64:
            raise ValueError(f"buffer_frames must be between 1 and 64, got {buffer_frames}")
        if limiter not in ("hard", "soft"):
            raise ValueError(f"limiter must be 'hard' or 'soft', got {limiter!r}")
        if kernel == "auto":
            kernel = _kernel.default_kernel()  # type: ignore[assignment]
        if kernel == "c" and not _kernel.available():
            raise ValueError("kernel='c' requested but mixer/_kernel.c was not built (pip install -e . builds it)")
        if kernel not in ("c", "numpy"):
            raise ValueError(f"kernel must be 'auto', 'c' or 'numpy', got {kernel!r}")
        self.kernel = kernel
        if not 1 <= threads <= 64:
            raise ValueError(f"threads must be between 1 and 64, got {threads}")
        if threads > 1 and kernel != "c":
            raise ValueError("threads > 1 needs the C kernel (it releases the GIL; numpy's path does not split)")
        if frame_samples is not None and not 1 <= frame_samples <= _kernel.MAX_SAMPLES:
            raise ValueError(f"frame_samples must be between 1 and {_kernel.MAX_SAMPLES}, got {frame_samples}")
        self.threads = threads
        # the C kernel runs without the GIL, so large pools can be split across worker threads
        self.realtime = realtime
        self._workers = ThreadPoolExecutor(threads - 1, thread_name_prefix="bargein-mix",
                                           initializer=self._worker_started,
                                           initargs=(itertools.count(1),)) if threads > 1 else None
        self.realtime_workers = 0  # worker threads running under SCHED_FIFO
        self.last_split: tuple[ShareTiming, ...] = ()  # the last C tick, per thread (the calling thread first)
        # the timing behind last_split costs four clock and rusage calls per thread per tick, a share of a small
        # worker's tick: on by default only where the tick is split across threads (benchmarks turn it on)
        self.share_timing = threads > 1
        self._chunks: tuple[np.ndarray, bool] | None = None  # the C tick's work (see _tick_chunks)
        self.rate = rate
        self.n_samples = frame_samples or samples_per_frame(rate)
        self.limits = limits or CallLimits()
        self.depth = buffer_frames
        self.limiter: LimiterKind = limiter
        self._pools: dict[int, _Pool] = {}
        self._calls: dict[CallKey, _Call] = {}
        self._leg_call: dict[LegId, CallKey] = {}
        # moves on at every change of membership or routing: who hears which mix (a cached send plan is stale)
        self.routing_epoch = 0
        self._next_leg = 0
        self.ticks = 0
        self.frames_pushed = 0
        self._missing_done = 0  # counters of legs that already left
        self._dropped_done = 0
        # where each leg lives (pool width, row, slot), for vectorised push_many/outputs; -1 = gone
        self._leg_loc = np.full((64, 3), -1, dtype=np.int64)
        # the tick may run in another thread (RealtimeClock(offload=True)): it holds the lock while it computes;
        # pushes that arrive meanwhile wait in _pending (the caller never blocks), other changes wait for the lock
        self._lock = threading.RLock()
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._table: np.ndarray | None = None  # pool pointers for the C push; rebuilt after membership changes
        self._scratch_i16 = np.empty(0, dtype=np.int16)
        self._scratch_f32 = np.empty(0, dtype=np.float32)
        self._acc = np.empty(0, dtype=np.float32)
        self._recorded = 0  # calls with a recording tap
        self._rec_ids = np.empty(0, dtype=np.int64)
        self._rec_frames = np.empty((0, 2, self.n_samples), dtype=np.int16)

    def _worker_started(self, numbers: itertools.count[int]) -> None:
        if make_current_thread_realtime(self.realtime, next(numbers)):
            self.realtime_workers += 1

    def start_workers(self) -> None:
        """Start the mix worker threads now (they start on the first split tick otherwise): their set-up, such as
        real-time scheduling, is then not in any tick's time."""
        if self._workers is not None:
            for job in [self._workers.submit(time.sleep, 0.01) for _ in range(self.threads - 1)]:
                job.result()

    # ------------------------------------------------------------------ membership (between ticks)
    @property
    def call_count(self) -> int:
        return len(self._calls)

    @property
    def leg_count(self) -> int:
        return len(self._leg_call)

    def calls(self) -> list[CallKey]:
        return list(self._calls)

    def has_leg(self, leg: LegId) -> bool:
        return leg in self._leg_call

    def call_of(self, leg: LegId) -> CallKey:
        return self._call_of(leg)

    def legs_of(self, call: CallKey) -> list[LegId]:
        return list(self._get_call(call).legs)

    def routing_of(self, leg: LegId) -> LegRouting:
        c = self._get_call(self._call_of(leg))
        return c.routing[c.legs.index(leg)]

    def gains_of(self, call: CallKey) -> np.ndarray:
        """The call's current gain matrix (listener x speaker), in leg order of :meth:`legs_of`."""
        c = self._get_call(call)
        return self._pool(len(c.legs)).gains[c.row].copy()

    def shared_mix_groups(self, call: CallKey) -> list[list[LegId]]:
        """Legs of ``call`` that hear exactly the same mix (equal gain rows), e.g. two monitoring
        supervisors: an encoder can encode once per group. Singletons included."""
        c = self._get_call(call)
        gains = self._pool(len(c.legs)).gains[c.row]
        groups: dict[bytes, list[LegId]] = {}
        for i, leg in enumerate(c.legs):
            groups.setdefault(gains[i].tobytes(), []).append(leg)
        return list(groups.values())

    def add_leg(self, call: CallKey, routing: LegRouting) -> LegId:
        """Add a leg to ``call`` (created on first leg). Raises LimitError when a limit would break."""
        c = self._calls.get(call)
        current = c.routing if c else []
        self.limits.check([(r.role, r.mode) for r in [*current, routing]])
        with self._lock:
            if c is None:
                c = self._calls[call] = _Call()
            leg = self._next_leg
            self._next_leg += 1
            self._move(call, c, add=routing, leg=leg)
            self._leg_call[leg] = call
        log.debug("mixer.leg_added", call=str(call), leg=leg, role=routing.role.value,
                  mode=routing.mode.value if routing.mode else None)
        return leg

    def set_routing(self, leg: LegId, routing: LegRouting) -> None:
        """Replace a leg's routing (mode, muted, held, gain); its call's gains are recomputed.

        The role of a leg is fixed: a different role raises ValueError. Raises LimitError (and changes
        nothing) when the new routing would break a call limit.
        """
        call = self._call_of(leg)
        c = self._calls[call]
        i = c.legs.index(leg)
        if routing.role is not c.routing[i].role:
            raise ValueError(f"leg {leg} has role {c.routing[i].role.value}: a leg's role cannot change "
                             f"(to {routing.role.value})")
        trial = [*c.routing[:i], routing, *c.routing[i + 1 :]]
        self.limits.check([(r.role, r.mode) for r in trial])
        with self._lock:
            c.routing = trial
            self._pool(len(c.legs)).gains[c.row] = route(c.routing)
            self.routing_epoch += 1
            self._set_rec_row(c)
        log.debug("mixer.routing_set", call=str(call), leg=leg, mode=routing.mode.value if routing.mode else None,
                  muted=routing.muted, held=routing.held, gain=routing.gain)

    def remove_leg(self, leg: LegId) -> None:
        call = self._call_of(leg)
        c = self._calls[call]
        with self._lock:
            self._move(call, c, drop=c.legs.index(leg))
            del self._leg_call[leg]
            self._leg_loc[leg] = -1
            if not c.legs:
                self._recorded -= c.rec_id >= 0
                del self._calls[call]
        log.debug("mixer.leg_removed", call=str(call), leg=leg)

    def remove_call(self, call: CallKey) -> None:
        for leg in list(self._get_call(call).legs):
            self.remove_leg(leg)

    def _move(self, call: CallKey, c: _Call, *, add: LegRouting | None = None, leg: LegId = -1,
              drop: int = -1) -> None:
        """Move ``call`` to the pool of its new width, carrying its buffers and counters."""
        self.routing_epoch += 1
        self._table = None  # a pool may be created or grown
        self._chunks = None
        w_old = len(c.legs)
        if w_old:
            pool = self._pools[w_old]
            if drop >= 0:  # the leaving leg's counters stay in the engine's totals
                self._missing_done += int(pool.missing[c.row, drop])
                self._dropped_done += int(pool.dropped[c.row, drop])
            carried = pool.carry(c.row, [i for i in range(w_old) if i != drop])
            self._remove_row(pool, c.row)
        else:
            carried = _Pool.empty(self.depth, self.n_samples)
        if drop >= 0:
            del c.legs[drop], c.routing[drop]
        if add is not None:
            c.legs.append(leg)
            c.routing.append(add)
        if not c.legs:
            c.row = -1
            return
        c.row = self._pool(len(c.legs)).append(call, carried, route(c.routing))
        self._set_rec_row(c)
        self._locate(c)

    # ------------------------------------------------------------------ recording tap
    def set_recording(self, call: CallKey, rec_id: int | None, channels: tuple[bool, bool] = (True, True)) -> None:
        """Record ``call`` under ``rec_id`` (a non-negative int; None stops). From the next tick on,
        :meth:`recording_output` has a stereo frame for it: left the contact center's side, right the
        caller's (:func:`mixer.routing.recording_gains`), gains following the routing as it changes."""
        if rec_id is not None and rec_id < 0:
            raise ValueError(f"rec_id must be >= 0, got {rec_id}")
        c = self._get_call(call)
        new = -1 if rec_id is None else rec_id
        self._recorded += (new >= 0) - (c.rec_id >= 0)
        c.rec_id, c.rec_channels = new, channels
        self._set_rec_row(c)

    def recording_of(self, call: CallKey) -> int | None:
        c = self._get_call(call)
        return c.rec_id if c.rec_id >= 0 else None

    def recording_output(self) -> tuple[np.ndarray, np.ndarray]:
        """The last tick's recording frames: ``(ids (k,), frames (k, 2, samples))`` int16, left then right.
        Fresh arrays every tick, so a consumer may keep them (hand them to a writer thread)."""
        return self._rec_ids, self._rec_frames

    def _set_rec_row(self, c: _Call) -> None:
        if c.row < 0:
            return
        pool = self._pool(len(c.legs))
        pool.rec_id[c.row] = c.rec_id
        pool.rec_gains[c.row] = 0
        if c.rec_id >= 0:
            pool.rec_gains[c.row, :2] = recording_gains(c.routing, c.rec_channels)

    def _tap(self, pool: _Pool, src: np.ndarray, ids: list[np.ndarray], frames: list[np.ndarray]) -> None:
        """Vectorised over the pool's recorded calls: the same input frames the mix used, two mixes each."""
        rows = np.flatnonzero(pool.rec_id[: pool.n] >= 0)
        if not rows.size:
            return
        ids.append(pool.rec_id[rows])
        k, w, ns = rows.size, pool.w, self.n_samples
        srcs, gains = src[rows], pool.rec_gains[rows, :2]  # (k, w), (k, 2, w)
        acc = np.zeros((k, 2, ns), np.float32)
        for s in range(w):  # a few array operations per pool, whatever the number of calls
            heard = pool.ring[srcs[:, s]].astype(np.float32)  # (k, ns); a missing frame is the zero row
            acc += gains[:, :, s, None] * heard[:, None, :]
        out = np.empty((k, 2, ns), np.int16)
        finish(acc, out, self.limiter)
        frames.append(out)

    def _locate(self, c: _Call) -> None:
        if c.legs and max(c.legs) >= self._leg_loc.shape[0]:
            grown = np.full((max(2 * self._leg_loc.shape[0], max(c.legs) + 1), 3), -1, dtype=np.int64)
            grown[: self._leg_loc.shape[0]] = self._leg_loc
            self._leg_loc = grown
        for slot, leg in enumerate(c.legs):
            self._leg_loc[leg] = (len(c.legs), c.row, slot)

    def _remove_row(self, pool: _Pool, row: int) -> None:
        moved = pool.remove(row)
        if moved is not None:
            self._calls[moved].row = row
            self._locate(self._calls[moved])

    def _pool(self, w: int) -> _Pool:
        pool = self._pools.get(w)
        if pool is None:
            pool = self._pools[w] = _Pool(w, self.depth, self.n_samples)
        return pool

    def _call_of(self, leg: LegId) -> CallKey:
        try:
            return self._leg_call[leg]
        except KeyError:
            raise UnknownLegError(leg) from None

    def _get_call(self, call: CallKey) -> _Call:
        try:
            return self._calls[call]
        except KeyError:
            raise UnknownCallError(call) from None

    def _where(self, leg: LegId) -> tuple[_Pool, int, int]:
        self._call_of(leg)  # raises UnknownLegError
        w, row, slot = self._leg_loc[leg]
        return self._pools[int(w)], int(row), int(slot)

    # ------------------------------------------------------------------ audio in and out
    def push(self, leg: LegId, frame: np.ndarray, *, sample_rate: int | None = None) -> None:
        """Queue one 20 ms frame for ``leg``. When the buffer is full the oldest frame is dropped."""
        check_frame(frame, self.rate, sample_rate=sample_rate, n_samples=self.n_samples)
        self._call_of(leg)  # raises UnknownLegError
        self._enqueue(np.array([leg], np.int64), np.ascontiguousarray(frame)[None, :])

    def push_many(self, legs: Iterable[LegId], frames: np.ndarray) -> None:
        """Queue one frame per leg: ``frames`` is ``(len(legs), samples_per_frame)`` int16.

        With the C kernel each frame is one contiguous copy into the ring slot the tick reads (non-temporal
        for pools too large for the cache). While a tick computes in another thread, the frames are copied
        aside and queued at the start of the next tick instead of waiting for it. (``tick(legs, frames)``
        queues and mixes in one step without the copy.)
        """
        ids, frames, _ = self._checked_input(legs, frames)
        self._enqueue(ids, frames)

    def _checked_input(self, legs: Iterable[LegId], frames: np.ndarray, rows: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        legs = legs if isinstance(legs, np.ndarray) else list(legs)
        if not isinstance(frames, np.ndarray) or frames.dtype != np.int16:
            raise FrameError("frames must be an int16 numpy array")
        if rows is None:
            if frames.shape != (len(legs), self.n_samples):
                raise FrameError(f"frames shape is {frames.shape}: expected ({len(legs)}, {self.n_samples})")
        else:
            rows = np.ascontiguousarray(rows, dtype=np.int64)
            if frames.ndim != 2 or frames.shape[1] != self.n_samples:
                raise FrameError(f"frames shape is {frames.shape}: expected (k, {self.n_samples})")
            if rows.shape != (len(legs),):
                raise FrameError(f"rows shape is {rows.shape}: expected ({len(legs)},), one per leg")
            if rows.size and (rows.min() < 0 or rows.max() >= frames.shape[0]):
                raise FrameError(f"rows must index frames (0 <= row < {frames.shape[0]})")
        return np.ascontiguousarray(legs, dtype=np.int64), np.ascontiguousarray(frames), rows

    def _enqueue(self, ids: np.ndarray, frames: np.ndarray) -> None:
        """Write now, or (while a tick computes in another thread) check the legs and keep a copy for later."""
        if not self._lock.acquire(blocking=False):
            self._locate_many(ids)  # raises UnknownLegError before anything is queued
            self._pending.append((ids, frames.copy()))
            return
        try:
            self._drain_pending()
            self._write_frames(ids, frames)
        finally:
            self._lock.release()

    def _drain_pending(self) -> None:
        """Queue pushes that arrived during a tick, in order; legs that left since are skipped."""
        while self._pending:
            ids, frames = self._pending.pop(0)
            alive = self._leg_loc[ids, 0] >= 0
            if not alive.all():
                ids, frames = ids[alive], frames[alive]
            self._write_frames(ids, frames)

    def _write_frames(self, ids: np.ndarray, frames: np.ndarray, lend: bool = False,
                      rows: np.ndarray | None = None) -> None:
        """Queue ``frames`` (C-contiguous; ``frames[rows]`` when given). ``lend`` (C kernel, only right before the
        tick, under the lock): legs with nothing queued keep the address of their frame instead of a copy."""
        if self.kernel == "c":  # the kernel checks every leg before it writes anything
            bad = _kernel.push(self._leg_loc, ids, frames, self._pool_table(), lend, rows)
            if bad >= 0:
                raise UnknownLegError(int(ids[bad]))
            self.frames_pushed += len(ids)
            return
        if rows is not None:
            frames = frames[rows]
        loc = self._locate_many(ids)
        if np.unique(ids).size < ids.size:  # a leg given several frames: queue them one by one, in order
            for i in range(ids.size):
                self._write(self._pools[int(loc[i, 0])], loc[i : i + 1, 1], loc[i : i + 1, 2], frames[i : i + 1])
            return
        widths = np.unique(loc[:, 0])
        if len(widths) == 1:  # common case: every leg in one pool, no regrouping copy
            self._write(self._pools[int(widths[0])], loc[:, 1], loc[:, 2], frames)
            return
        for w in widths:
            sel = np.flatnonzero(loc[:, 0] == w)
            self._write(self._pools[int(w)], loc[sel, 1], loc[sel, 2], frames[sel])

    def _pool_table(self) -> np.ndarray:
        """One row per pool width: where the C push finds the pool's ring and counters."""
        if self._table is None:
            table = np.zeros((max(self._pools, default=0) + 1, _kernel.POOL_FIELDS), np.int64)
            for w, p in self._pools.items():
                table[w] = (_kernel.address(p.ring), _kernel.address(p.wr), _kernel.address(p.rd),
                            _kernel.address(p.dropped), p.depth, p.plane_stride, p.stream, _kernel.address(p.src))
            self._table = table
        return self._table

    def _locate_many(self, legs: list[LegId] | np.ndarray) -> np.ndarray:
        """(pool width, row, slot) per leg; raises UnknownLegError naming the first unknown one."""
        ids = np.asarray(legs, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self._leg_loc.shape[0]):
            bad = next(int(leg) for leg in ids if int(leg) not in self._leg_call)
            raise UnknownLegError(bad)
        loc = self._leg_loc[ids]
        if ids.size and loc[:, 0].min() < 0:
            raise UnknownLegError(int(ids[np.flatnonzero(loc[:, 0] < 0)[0]]))
        return loc

    def _write(self, pool: _Pool, rows: np.ndarray, slots: np.ndarray, frames: np.ndarray) -> None:
        wr, rd = pool.wr[rows, slots], pool.rd[rows, slots]
        full = (wr - rd) >= pool.depth
        if full.any():
            rd = rd + full
            pool.rd[rows, slots] = rd
            np.add.at(pool.dropped, (rows[full], slots[full]), 1)
        # one flat row index per frame: numpy copies whole rows for a single index array
        pool.ring[(wr % pool.depth) * pool.plane_stride + rows * pool.w + slots] = frames
        pool.wr[rows, slots] = wr + 1
        self.frames_pushed += len(rows)

    def output(self, leg: LegId) -> np.ndarray:
        """The leg's mix from the last tick (a read-only view, valid until the next tick or membership change)."""
        pool, row, slot = self._where(leg)
        view = pool.out[row, slot]
        view.flags.writeable = False
        return view

    def outputs(self, legs: Iterable[LegId]) -> np.ndarray:
        """Copies of several legs' last mixes, ``(len(legs), samples_per_frame)``."""
        legs = list(legs)
        res = np.empty((len(legs), self.n_samples), np.int16)
        with self._lock:
            for out, sel, rows, slots in self._output_parts(legs):
                res[sel] = out[rows, slots]
        return res

    def _output_parts(self, legs: list[LegId]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Where ``legs``' mixes are, one part per pool: (its outputs, positions in ``legs``, rows, slots)."""
        loc = self._locate_many(legs)
        parts = []
        for w in np.unique(loc[:, 0]):
            sel = np.flatnonzero(loc[:, 0] == w)
            parts.append((self._pools[int(w)].out, sel, loc[sel, 1], loc[sel, 2]))
        return parts

    def output_gather(self, legs: Iterable[LegId]) -> OutputGather:
        """A reusable :meth:`outputs` for these legs (see :class:`OutputGather` and :meth:`gather`)."""
        return OutputGather(legs, self.n_samples)

    def _located(self, g: OutputGather) -> OutputGather:
        """``g`` located in the current layout (again only when the routing epoch moved); hold the lock."""
        if g.epoch != self.routing_epoch:
            g.parts = self._output_parts(g.legs)
            for out, sel, rows, slots in g.parts:
                assert out.flags.c_contiguous
                g.addresses[sel] = _kernel.address(out) + rows * out.strides[0] + slots * out.strides[1]
            g.epoch = self.routing_epoch
        return g

    def gather(self, g: OutputGather) -> np.ndarray:
        """:meth:`outputs` of ``g``'s legs, into ``g``'s own array (overwritten by the next call); the legs are
        located again only when the layout changed since the last call."""
        with self._lock:
            for out, sel, rows, slots in self._located(g).parts:
                g.res[sel] = out[rows, slots]
        return g.res

    def output_addresses(self, g: OutputGather) -> np.ndarray:
        """Where each of ``g``'s legs' mix is: int64 addresses of ``n_samples`` int16 each, for C code that reads the
        mixes after a tick without a copy (the WebRTC send path). Located as :meth:`gather` locates; call it after
        every tick and before reading, and read before the next tick, which overwrites them."""
        with self._lock:
            return self._located(g).addresses

    def buffered(self, leg: LegId) -> int:
        with self._lock:
            self._drain_pending()
            pool, row, slot = self._where(leg)
            return int(pool.wr[row, slot] - pool.rd[row, slot])

    def leg_counters(self, leg: LegId) -> tuple[int, int]:
        """(frames missing, frames dropped) so far for one leg."""
        with self._lock:
            self._drain_pending()
            pool, row, slot = self._where(leg)
            return int(pool.missing[row, slot]), int(pool.dropped[row, slot])

    @property
    def counters(self) -> MixerCounters:
        with self._lock:
            self._drain_pending()
            missing, dropped = self._missing_done, self._dropped_done
            for pool in self._pools.values():
                m, d = pool.totals()
                missing, dropped = missing + m, dropped + d
        return MixerCounters(self.ticks, missing, dropped, self.frames_pushed)

    # ------------------------------------------------------------------ the tick
    def tick(self, legs: Iterable[LegId] | None = None, frames: np.ndarray | None = None, *,
             rows: Iterable[int] | np.ndarray | None = None) -> None:
        """Mix every call once: consume one frame per leg (silence if missing), write every output.

        ``tick(legs, frames)`` is ``push_many(legs, frames)`` then ``tick()`` in one step, checked the same way.
        With the C kernel, a leg with nothing else queued is mixed straight from its row of ``frames``, not
        copied into the engine first: the input costs one read, as in a plain copy. With ``rows``, leg
        ``legs[i]``'s frame is ``frames[rows[i]]``: many legs can speak the same few frames (test tones).

        Thread-safe against the other methods: it may run in a worker thread while the event loop goes on.
        """
        ids = None
        if legs is not None or frames is not None:
            if legs is None or frames is None:
                raise TypeError("tick() takes both legs and frames, or neither")
            ids, frames, rows = self._checked_input(legs, frames, None if rows is None else np.asarray(rows))
        elif rows is not None:
            raise TypeError("rows index the tick's frames: give legs and frames too")
        with self._lock:
            self._drain_pending()
            if ids is not None:
                self._write_frames(ids, frames, lend=True, rows=rows)
            if self.kernel == "c":
                try:
                    self._tick_c()  # consumes every lent frame
                except BaseException:
                    for pool in self._pools.values():  # lent frames never outlive this call
                        pool.src[: pool.n] = 0
                    raise
                self._collect_recordings_c()
            else:
                # recorded calls: which ring rows this tick reads, taken before the mix consumes them
                taps = [(pool, self._peek(pool)) for pool in self._pools.values()
                        if self._recorded and pool.n and (pool.rec_id[: pool.n] >= 0).any()]
                for pool in self._pools.values():
                    if pool.n:
                        self._mix_numpy(pool, self._consume(pool))
                rec_ids: list[np.ndarray] = []
                rec_frames: list[np.ndarray] = []
                for pool, src in taps:
                    self._tap(pool, src, rec_ids, rec_frames)
                self._set_recordings(rec_ids, rec_frames)
            self.ticks += 1

    def _collect_recordings_c(self) -> None:
        """The recording frames the C tick wrote for recorded calls, as fresh arrays."""
        ids: list[np.ndarray] = []
        frames: list[np.ndarray] = []
        if self._recorded:
            for pool in self._pools.values():
                rows = np.flatnonzero(pool.rec_id[: pool.n] >= 0)
                if rows.size:
                    ids.append(pool.rec_id[rows])
                    frames.append(pool.rec_out[rows])  # a copy (fancy indexing): next tick does not touch it
        self._set_recordings(ids, frames)

    def _set_recordings(self, ids: list[np.ndarray], frames: list[np.ndarray]) -> None:
        if len(ids) == 1:  # one pool: its fresh array as it is (no copy)
            self._rec_ids, self._rec_frames = ids[0], frames[0]
        elif ids:
            self._rec_ids, self._rec_frames = np.concatenate(ids), np.concatenate(frames)
        elif self._rec_ids.size:
            self._rec_ids = np.empty(0, dtype=np.int64)
            self._rec_frames = np.empty((0, 2, self.n_samples), dtype=np.int16)

    @staticmethod
    def _peek(pool: _Pool) -> np.ndarray:
        """The ring rows the next mix reads, ``(n, w)``, without consuming them (the zero row where missing)."""
        n = pool.n
        wr, rd = pool.wr[:n], pool.rd[:n]
        return np.where(wr > rd, pool.slot_base[:n] + (rd % pool.depth) * pool.plane_stride, pool.zero_row)

    def _tick_c(self) -> None:
        """The fused C kernel consumes and mixes. With several threads, large pools are cut into chunks of
        ``_CHUNK_ROWS`` calls that every thread takes from one queue, and the tick is done when every chunk is
        mixed, whoever mixed it: a thread that starts late or is slowed down (its CPU taken by another process or
        the hypervisor) leaves its share to the others and holds up at most the one chunk it has in hand."""
        chunks, shared = self._tick_chunks()
        if not len(chunks):
            self.last_split = ()
            return
        counters = np.zeros(2, np.int64)  # fresh per tick: a worker that starts after the tick finds nothing left
        if not self.share_timing and not shared:
            _kernel.tick_chunks(_kernel.address(chunks), len(chunks), _kernel.address(counters),
                                self.limiter == "soft", True)
            self.last_split = ()
            return
        split = time.perf_counter()
        jobs = [self._workers.submit(self._mix_chunks, chunks, counters, split, False)
                for _ in range(self.threads - 1)] if self._workers and shared else []
        timings = [self._mix_chunks(chunks, counters, split, True)]
        timings += [job.result() for job in jobs if job.done()]  # workers that had not finished are not waited on
        self.last_split = tuple(timings)

    def _tick_chunks(self) -> tuple[np.ndarray, bool]:
        """The tick's chunks (kernel.CHUNK_FIELDS per row; rebuilt after membership changes), and whether they are
        worth sharing with the worker threads (a pool large enough to split)."""
        if self._chunks is None:
            rows, shared = [], False
            for pool in self._pools.values():
                split = self.threads > 1 and pool.n >= _SPLIT_ROWS * self.threads
                shared |= split
                step = _CHUNK_ROWS if split else max(pool.n, 1)
                rows += [(pool.arrays_addr, r0, min(pool.n, r0 + step), pool.w, pool.n_samples, pool.depth,
                          pool.plane_stride, int(pool.stream)) for r0 in range(0, pool.n, step)]
            self._chunks = (np.array(rows, np.int64).reshape(-1, _kernel.CHUNK_FIELDS), shared)
        return self._chunks

    def _mix_chunks(self, chunks: np.ndarray, counters: np.ndarray, split: float, wait: bool) -> ShareTiming:
        t0, c0, r0 = time.perf_counter(), time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD)
        done = _kernel.tick_chunks(_kernel.address(chunks), len(chunks), _kernel.address(counters),
                                   self.limiter == "soft", wait)
        t1, c1, r1 = time.perf_counter(), time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD)
        return ShareTiming((t0 - split) * 1000, (t1 - t0) * 1000, (c1 - c0) * 1000, r1.ru_nivcsw - r0.ru_nivcsw,
                           r1.ru_minflt - r0.ru_minflt + r1.ru_majflt - r0.ru_majflt, done)

    @staticmethod
    def _consume(pool: _Pool) -> np.ndarray:
        """Take one frame per leg: ring rows to mix, ``(n, w)`` (the zero row where a frame is missing)."""
        n = pool.n
        wr, rd = pool.wr[:n], pool.rd[:n]
        has = wr > rd
        src = np.where(has, pool.slot_base[:n] + (rd % pool.depth) * pool.plane_stride, pool.zero_row)
        pool.missing[:n] += ~has
        rd += has
        empty = wr == rd  # as in the C kernel: an empty ring restarts at plane 0
        wr[empty] = 0
        rd[empty] = 0
        return src

    def _mix_numpy(self, pool: _Pool, src: np.ndarray) -> None:
        """Gather, widen to float32, one batched matmul, then round/limit/clamp, in cache-sized chunks."""
        n, w, ns = pool.n, pool.w, self.n_samples
        rows_per_chunk = max(1, _CHUNK_BYTES // (w * ns * 4))
        self._ensure_scratch(min(n, rows_per_chunk) * w * ns)
        for c0 in range(0, n, rows_per_chunk):
            c1 = min(n, c0 + rows_per_chunk)
            m = c1 - c0
            size = m * w * ns
            gathered = self._scratch_i16[:size].reshape(m * w, ns)
            np.take(pool.ring, src[c0:c1].ravel(), axis=0, out=gathered, mode="clip")  # "raise" would buffer
            wide = self._scratch_f32[:size].reshape(m, w, ns)
            np.copyto(wide, gathered.reshape(m, w, ns))
            acc = self._acc[:size].reshape(m, w, ns)
            np.matmul(pool.gains[c0:c1], wide, out=acc)
            finish(acc, pool.out[c0:c1], self.limiter)

    def _ensure_scratch(self, size: int) -> None:
        if self._scratch_i16.size < size:
            self._scratch_i16 = np.empty(size, np.int16)
            self._scratch_f32 = np.empty(size, np.float32)
            self._acc = np.empty(size, np.float32)


__all__ = [
    "CallKey",
    "LegId",
    "LimitError",
    "MixerCounters",
    "MixerEngine",
    "OutputGather",
    "Role",
    "ShareTiming",
    "SupervisorMode",
    "UnknownCallError",
    "UnknownLegError",
]
