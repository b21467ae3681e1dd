"""Tick clocks: one interface, real time (asyncio, drift-free) and virtual (caller-driven)."""

from __future__ import annotations

import asyncio
import resource
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
import structlog

from .frames import FRAME_MS
from .realtime import OFF, RealtimePolicy, is_realtime, make_current_thread_realtime

log = structlog.get_logger("bargein.clock")

TickFn = Callable[[], object]


@dataclass(frozen=True, slots=True)
class TickStats:
    """One tick: its index, how late it started, how long it computed, whether it missed its deadline.

    The clock thread of an offloaded clock also says where a late start came from and what a long tick did:
    ``wake_ms`` (of ``lateness_ms``) is how late the timer woke the thread (the scheduler, or the hypervisor),
    ``wait_ms`` how long it then waited for the event loop (feeders, the previous tick's listeners);
    ``cpu_ms`` is the clock thread's CPU time in the tick (well under ``compute_ms``: it was not running, or
    waited for the other mix threads), ``preempted`` how often it was switched out against its will and
    ``faults`` its page faults.
    """

    index: int
    lateness_ms: float
    compute_ms: float
    missed: bool
    wake_ms: float = 0.0
    wait_ms: float = 0.0
    cpu_ms: float = 0.0
    preempted: int = 0
    faults: int = 0


class _StatsWindow:
    """Bounded history of recent ticks plus running totals."""

    def __init__(self, keep: int) -> None:
        self.recent: deque[TickStats] = deque(maxlen=keep)
        self.ticks = 0
        self.deadline_misses = 0
        self.max_compute_ms = 0.0
        self.max_lateness_ms = 0.0

    def add(self, s: TickStats) -> None:
        self.recent.append(s)
        self.ticks += 1
        self.deadline_misses += s.missed
        self.max_compute_ms = max(self.max_compute_ms, s.compute_ms)
        self.max_lateness_ms = max(self.max_lateness_ms, s.lateness_ms)

    def percentile(self, field: str, q: float) -> float:
        return self.percentiles(field, (q,))[0]

    def percentiles(self, field: str, qs: tuple[float, ...]) -> list[float]:
        """Several percentiles of one field over the recent ticks, reading the window once (a media worker's
        stats ask every second, between ticks)."""
        if not self.recent:
            return [0.0] * len(qs)
        values = np.fromiter((getattr(s, field) for s in self.recent), np.float64, len(self.recent))
        return [float(v) for v in np.percentile(values, qs)]


class _ClockBase:
    period_s = FRAME_MS / 1000

    def __init__(self, on_tick: TickFn, *, keep_stats: int = 3000) -> None:
        self.on_tick = on_tick
        self.stats = _StatsWindow(keep_stats)
        self._listeners: list[Callable[[TickStats], object]] = []
        self._feeders: list[Callable[[int], object]] = []
        self._timer: Callable[[], float] = time.perf_counter
        self.tick_index = -1  # the index of the tick being run (or last run): on_tick can tell which one it is

    @property
    def ticks(self) -> int:
        return self.stats.ticks

    def add_listener(self, fn: Callable[[TickStats], object]) -> None:
        """Call ``fn(stats)`` after every tick (e.g. to hand out mixed frames)."""
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[TickStats], object]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def add_feeder(self, fn: Callable[[int], object]) -> None:
        """Call ``fn(index)`` right before every tick: inputs pulled just in time wait no extra tick."""
        self._feeders.append(fn)

    def remove_feeder(self, fn: Callable[[int], object]) -> None:
        if fn in self._feeders:
            self._feeders.remove(fn)

    def _run_tick(self, index: int, lateness_s: float) -> TickStats:
        t0 = self._timer()
        for feed in list(self._feeders):
            feed(index)
        self.tick_index = index
        self.on_tick()
        return self._record(index, lateness_s, self._timer() - t0)

    def _record(self, index: int, lateness_s: float, compute: float, **detail: float) -> TickStats:
        missed = lateness_s + compute > self.period_s
        s = TickStats(index, lateness_s * 1000, compute * 1000, missed, **detail)  # type: ignore[arg-type]
        self.stats.add(s)
        for fn in list(self._listeners):
            fn(s)
        return s


class VirtualClock(_ClockBase):
    """Ticks as fast as the caller drives them; virtual time is ``ticks x 20 ms``."""

    @property
    def now_s(self) -> float:
        return self.stats.ticks * self.period_s

    def advance(self, n: int = 1) -> TickStats | None:
        last = None
        for _ in range(n):
            last = self._run_tick(self.stats.ticks, 0.0)
        return last


class RealtimeClock(_ClockBase):
    """Tick ``n`` is due at ``start + n x 20 ms`` on the monotonic clock.

    A late tick runs at once and is counted (lateness, deadline miss); the schedule is never shifted,
    so there is no drift. When more than ``max_catch_up`` ticks are overdue (the process was stopped),
    the overdue ones are skipped and counted rather than run in a burst.

    With ``offload=False`` the event loop keeps the time and runs each tick itself. With ``offload=True`` the
    ticks compute in a clock thread of their own (``on_tick`` must be thread-safe, as ``MixerEngine.tick`` is),
    scheduled under SCHED_FIFO when ``realtime`` asks for it (see ``mixer/realtime.py``; an ordinary thread, with
    a warning, when not permitted), and ``timing`` says who keeps the time:

    - ``"thread"`` (default): the clock thread sleeps until each due time itself, so neither the loop's timer
      (millisecond resolution, and an ordinary thread's wake-up on a busy machine) nor a hand-off to and from
      the loop stands between a tick's due time and its mix. The loop still runs feeders and listeners:
      feeders are asked ``feed_lead_s`` ahead of the due time and the tick waits for them; listeners get each
      tick's stats on the loop, and the next tick waits until they have run (they read the mixer's outputs,
      which the next tick overwrites).
    - ``"loop"``: the loop wakes at each due time, runs the feeders and hands the tick to the clock thread,
      then runs the listeners when it is done. For feeders that must pull their input on the loop at the tick
      itself (the WebRTC gateway's jitter buffers): a loop too busy to answer the clock thread on time (aiortc
      in the same process) then delays ticks as it always did, without the thread's schedule in between.
    """

    feed_lead_s = 0.002  # feeders run this long before the due time: the loop's wake-up is off the tick's path

    def __init__(
        self,
        on_tick: TickFn,
        *,
        max_catch_up: int = 5,
        keep_stats: int = 3000,
        time_fn: Callable[[], float] = time.monotonic,
        sleep_fn: Callable[[float], Awaitable[object]] = asyncio.sleep,
        offload: bool = False,
        realtime: RealtimePolicy = OFF,
        timing: Literal["thread", "loop"] = "thread",
    ) -> None:
        super().__init__(on_tick, keep_stats=keep_stats)
        if timing not in ("thread", "loop"):
            raise ValueError(f"timing must be 'thread' or 'loop', got {timing!r}")
        self.offload = offload
        self.timing = timing
        self.realtime = realtime
        self.realtime_granted = False  # whether the clock thread got SCHED_FIFO (offload and realtime only)
        self.max_catch_up = max_catch_up
        self._now, self._sleep = time_fn, sleep_fn  # injectable so tests can use a fake clock (loop mode)
        self._timer = time_fn
        self.skipped = 0
        self._task: asyncio.Task[None] | None = None
        self._tick_event: asyncio.Event | None = None
        self.start_time: float | None = None
        self._fault: BaseException | None = None  # raised by a feeder or listener on the loop (offload)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task[None]:
        if self.running:
            raise RuntimeError("clock already running")
        self._task = asyncio.get_running_loop().create_task(self.run(), name="bargein-mixer-clock")
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def wait_tick(self) -> int:
        """Wait for the next tick to finish; returns its index."""
        if self._tick_event is None:
            self._tick_event = asyncio.Event()
        await self._tick_event.wait()
        return self.stats.ticks - 1

    def _end_tick(self, duration_s: float | None) -> int | None:
        return None if duration_s is None else int(round(duration_s / self.period_s))

    def _overdue(self, lateness: float, n: int, end_tick: int | None) -> int:
        """Ticks to skip: all the overdue ones when more than ``max_catch_up`` are (never past the last tick)."""
        overdue = int(lateness / self.period_s)
        if end_tick is not None:
            overdue = min(overdue, end_tick - n - 1)
        if overdue <= self.max_catch_up:
            return 0
        self.skipped += overdue
        log.warning("clock.skipped_ticks", skipped=overdue, lateness_ms=round(lateness * 1000, 1))
        return overdue

    def _tick_done(self) -> None:
        event, self._tick_event = self._tick_event, asyncio.Event()
        if event is not None:
            event.set()

    async def run(self, duration_s: float | None = None) -> None:
        self._tick_event = self._tick_event or asyncio.Event()
        log.info("clock.started", period_ms=self.period_s * 1000, offload=self.offload, timing=self.timing,
                 realtime_priority=self.realtime.priority)
        try:
            if self.offload and self.timing == "thread":
                await self._run_threaded(self._end_tick(duration_s))
            elif self.offload:
                await self._run_loop_timed(self._end_tick(duration_s))
            else:
                await self._run_on_loop(self._end_tick(duration_s))
        finally:
            log.info("clock.stopped", ticks=self.stats.ticks, deadline_misses=self.stats.deadline_misses,
                     skipped=self.skipped)

    async def _until_due(self, start: float, n: int, end_tick: int | None) -> tuple[int, float]:
        """On the loop: sleep until tick ``n`` is due; returns the tick to run (later, if ticks were
        skipped after a stall) and how late it is."""
        due = start + n * self.period_s
        delay = due - self._now()
        if delay > 0:
            await self._sleep(delay)
        lateness = self._now() - due
        skip = self._overdue(lateness, n, end_tick)
        if skip:
            n += skip
            lateness = self._now() - (start + n * self.period_s)
        return n, lateness

    async def _run_on_loop(self, end_tick: int | None) -> None:
        start = self.start_time = self._now()
        n = 0
        while end_tick is None or n < end_tick:
            n, lateness = await self._until_due(start, n, end_tick)
            self._run_tick(n, max(0.0, lateness))
            self._tick_done()
            n += 1
            await asyncio.sleep(0)  # let consumers of this tick run before the next one

    async def _run_loop_timed(self, end_tick: int | None) -> None:
        """The loop keeps the time and runs the feeders; each tick computes in the (real-time) clock thread."""
        granted: list[bool] = []
        worker = ThreadPoolExecutor(1, thread_name_prefix="bargein-clock", initializer=lambda: granted.append(
            make_current_thread_realtime(self.realtime, 0) and is_realtime()))
        loop = asyncio.get_running_loop()
        try:
            start = self.start_time = self._now()
            n = 0
            while end_tick is None or n < end_tick:
                n, lateness = await self._until_due(start, n, end_tick)
                t0 = self._timer()
                for feed in list(self._feeders):  # inputs are pulled on the loop, right before the mix
                    feed(n)
                self.tick_index = n
                detail = await loop.run_in_executor(worker, self._timed_tick)
                self.realtime_granted = bool(granted and granted[0])
                self._record(n, max(0.0, lateness), self._timer() - t0, **detail)
                self._tick_done()
                n += 1
                await asyncio.sleep(0)  # let consumers of this tick run before the next one
        finally:
            worker.shutdown(wait=False)  # a tick still computing finishes on its own

    def _timed_tick(self) -> dict[str, float]:
        c0, r0 = time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD)
        self.on_tick()
        c1, r1 = time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD)
        return {"cpu_ms": (c1 - c0) * 1000, "preempted": r1.ru_nivcsw - r0.ru_nivcsw,
                "faults": (r1.ru_minflt - r0.ru_minflt) + (r1.ru_majflt - r0.ru_majflt)}

    # ------------------------------------------------------------------ the clock thread keeps the time
    async def _run_threaded(self, end_tick: int | None) -> None:
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()
        halt = threading.Event()
        self._fault = None
        self.start_time = self._now()
        thread = threading.Thread(target=self._drive, args=(loop, self.start_time, end_tick, halt, finished),
                                  name="bargein-clock", daemon=True)
        thread.start()
        try:
            await finished
        finally:
            halt.set()
            # at most one tick: every wait of the thread on the loop gives up once halted
            thread.join(timeout=5.0)

    def _drive(self, loop: asyncio.AbstractEventLoop, start: float, end_tick: int | None, halt: threading.Event,
               finished: asyncio.Future[None]) -> None:
        """The clock thread: sleep until each due time, then run the tick; the loop runs feeders and listeners."""
        error: BaseException | None = None
        try:
            self.realtime_granted = make_current_thread_realtime(self.realtime, 0) and is_realtime()
            listened: threading.Event | None = None  # set once the loop has run the last tick's listeners
            n = 0
            while not halt.is_set() and (end_tick is None or n < end_tick):
                due = start + n * self.period_s
                fed = None
                if self._feeders:
                    _sleep_until(self._now, due - self.feed_lead_s, halt)
                    fed = threading.Event()
                    loop.call_soon_threadsafe(self._feed_on_loop, n, fed, halt)
                _sleep_until(self._now, due, halt)
                woke = self._now()
                for turn in (listened, fed):  # the loop's part: the last tick's listeners, this tick's inputs
                    if turn is not None and not _wait(turn, halt):
                        return
                if halt.is_set():  # stopped, or a feeder or listener failed
                    return
                began = self._now()
                lateness = began - due
                skip = self._overdue(lateness, n, end_tick)
                if skip:
                    n += skip
                    lateness = began - (start + n * self.period_s)
                t0, c0, r0 = self._now(), time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD)
                self.tick_index = n
                self.on_tick()
                t1, c1, r1 = self._now(), time.thread_time(), resource.getrusage(resource.RUSAGE_THREAD)
                detail = {"wake_ms": max(0.0, woke - due) * 1000, "wait_ms": (began - woke) * 1000,
                          "cpu_ms": (c1 - c0) * 1000, "preempted": r1.ru_nivcsw - r0.ru_nivcsw,
                          "faults": (r1.ru_minflt - r0.ru_minflt) + (r1.ru_majflt - r0.ru_majflt)}
                listened = threading.Event() if self._listeners else None
                loop.call_soon_threadsafe(self._after_tick, n, max(0.0, lateness), t1 - t0, detail, listened, halt)
                n += 1
        except BaseException as exc:  # handed to run()'s caller, as a tick on the loop would raise it
            error = exc
        finally:
            try:
                loop.call_soon_threadsafe(_settle, finished, error or self._fault)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

    def _feed_on_loop(self, index: int, fed: threading.Event, halt: threading.Event) -> None:
        try:
            for feed in list(self._feeders):
                feed(index)
        except BaseException as exc:  # ends the run with this error, as on the loop
            self._fault = exc
            halt.set()
        finally:
            fed.set()

    def _after_tick(self, index: int, lateness_s: float, compute_s: float, detail: dict[str, float],
                    listened: threading.Event | None, halt: threading.Event) -> None:
        try:
            self._record(index, lateness_s, compute_s, **detail)
            self._tick_done()
        except BaseException as exc:
            self._fault = exc
            halt.set()
        finally:
            if listened is not None:  # after the tasks woken by this tick had their turn (call_soon is FIFO)
                asyncio.get_running_loop().call_soon(listened.set)


def _sleep_until(now: Callable[[], float], t: float, halt: threading.Event) -> None:
    """Sleep until ``t`` (time.sleep is clock_nanosleep to an absolute monotonic deadline: no drift, no ms
    rounding; a SCHED_FIFO thread gets no timer slack). Wakes at least every 50 ms to notice ``halt``."""
    while not halt.is_set():
        left = t - now()
        if left <= 0:
            return
        time.sleep(min(left, 0.05))


def _wait(event: threading.Event, halt: threading.Event) -> bool:
    """Wait for ``event``; False when the clock was halted meanwhile."""
    while not event.wait(0.005):
        if halt.is_set():
            return False
    return True


def _settle(finished: asyncio.Future[None], error: BaseException | None) -> None:
    if finished.done():  # run() was cancelled
        return
    if error is None:
        finished.set_result(None)
    else:
        finished.set_exception(error)
