"""Tick clocks: one interface, real time (asyncio, drift-free) and virtual (caller-driven)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import structlog

from .frames import FRAME_MS

log = structlog.get_logger("bargein.clock")

TickFn = Callable[[], object]


@dataclass(frozen=True, slots=True)
class TickStats:
    """One tick: its index, how late it started, how long it computed, whether it missed its deadline."""

    index: int
    lateness_ms: float
    compute_ms: float
    missed: bool


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
        if not self.recent:
            return 0.0
        return float(np.percentile([getattr(s, field) for s in self.recent], q))


class _ClockBase:
    period_s = FRAME_MS / 1000

    def __init__(self, on_tick: TickFn, *, keep_stats: int = 3000) -> None:
        self.on_tick = on_tick
        self.stats = _StatsWindow(keep_stats)
        self._listeners: list[Callable[[TickStats], object]] = []
        self._feeders: list[Callable[[int], object]] = []
        self._timer: Callable[[], float] = time.perf_counter

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
        self.on_tick()
        return self._record(index, lateness_s, self._timer() - t0)

    def _record(self, index: int, lateness_s: float, compute: float) -> TickStats:
        missed = lateness_s + compute > self.period_s
        s = TickStats(index, lateness_s * 1000, compute * 1000, missed)
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

    With ``offload=True`` each tick runs in a worker thread and the clock task awaits it, so the event
    loop keeps serving while the mix computes (``on_tick`` must then be thread-safe, as
    ``MixerEngine.tick`` is: the C kernel runs without the GIL). Listeners still run on the loop.
    """

    def __init__(
        self,
        on_tick: TickFn,
        *,
        max_catch_up: int = 5,
        keep_stats: int = 3000,
        time_fn: Callable[[], float] = time.monotonic,
        sleep_fn: Callable[[float], Awaitable[object]] = asyncio.sleep,
        offload: bool = False,
    ) -> None:
        super().__init__(on_tick, keep_stats=keep_stats)
        self.offload = offload
        self.max_catch_up = max_catch_up
        self._now, self._sleep = time_fn, sleep_fn  # injectable so tests can use a fake clock
        self._timer = time_fn
        self.skipped = 0
        self._task: asyncio.Task[None] | None = None
        self._tick_event: asyncio.Event | None = None
        self.start_time: float | None = None

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

    async def run(self, duration_s: float | None = None) -> None:
        self._tick_event = self._tick_event or asyncio.Event()
        start = self.start_time = self._now()
        n = 0
        end_tick = None if duration_s is None else int(round(duration_s / self.period_s))
        log.info("clock.started", period_ms=self.period_s * 1000, offload=self.offload)
        worker = ThreadPoolExecutor(1, thread_name_prefix="bargein-tick") if self.offload else None
        try:
            while end_tick is None or n < end_tick:
                due = start + n * self.period_s
                delay = due - self._now()
                if delay > 0:
                    await self._sleep(delay)
                lateness = self._now() - due
                overdue = int(lateness / self.period_s)
                if overdue > self.max_catch_up:
                    self.skipped += overdue
                    log.warning("clock.skipped_ticks", skipped=overdue, lateness_ms=round(lateness * 1000, 1))
                    n += overdue
                    due = start + n * self.period_s
                    lateness = self._now() - due
                if worker is None:
                    self._run_tick(n, max(0.0, lateness))
                else:
                    t0 = self._timer()
                    await asyncio.get_running_loop().run_in_executor(worker, self.on_tick)
                    self._record(n, max(0.0, lateness), self._timer() - t0)
                event, self._tick_event = self._tick_event, asyncio.Event()
                event.set()
                n += 1
                await asyncio.sleep(0)  # let consumers of this tick run before the next one
        finally:
            if worker is not None:
                worker.shutdown(wait=False)  # a tick still computing finishes on its own
            log.info("clock.stopped", ticks=self.stats.ticks, deadline_misses=self.stats.deadline_misses)
