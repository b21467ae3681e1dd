"""Prometheus metrics for a running mixer: ticks, lateness, compute time, gaps and drops."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .clock import TickStats, _ClockBase
from .engine import MixerEngine

_MS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 12, 16, 20, 30, 50, 100)


class MixerMetrics:
    """Registers bargein_mixer_* metrics in ``registry`` and updates them after every tick."""

    def __init__(self, engine: MixerEngine, clock: _ClockBase, registry: CollectorRegistry) -> None:
        self.engine = engine
        self.ticks = Counter("bargein_mixer_ticks", "Mixer ticks run", registry=registry)
        self.misses = Counter("bargein_mixer_deadline_misses", "Ticks that finished after their 20 ms deadline",
                              registry=registry)
        self.compute = Histogram("bargein_mixer_tick_compute_ms", "Time to mix all calls in one tick (ms)",
                                 buckets=_MS_BUCKETS, registry=registry)
        self.lateness = Histogram("bargein_mixer_tick_lateness_ms", "How late a tick started (ms)",
                                  buckets=_MS_BUCKETS, registry=registry)
        self.calls = Gauge("bargein_mixer_calls", "Calls in the mixer", registry=registry)
        self.legs = Gauge("bargein_mixer_legs", "Legs in the mixer", registry=registry)
        self.missing = Gauge("bargein_mixer_frames_missing", "Input frames that were missing at their tick (total)",
                             registry=registry)
        self.dropped = Gauge("bargein_mixer_frames_dropped", "Input frames dropped because a leg's buffer was full (total)",
                             registry=registry)
        self._every = 50  # totals are sums over arrays: refresh once a second, not every tick
        clock.add_listener(self._on_tick)

    def _on_tick(self, s: TickStats) -> None:
        self.ticks.inc()
        self.misses.inc(s.missed)
        self.compute.observe(s.compute_ms)
        self.lateness.observe(s.lateness_ms)
        if s.index % self._every == 0:
            self.calls.set(self.engine.call_count)
            self.legs.set(self.engine.leg_count)
            c = self.engine.counters
            self.missing.set(c.frames_missing)
            self.dropped.set(c.frames_dropped)
