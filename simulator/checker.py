"""The routing checker: measure sampled listeners' mixes and compare them with who should be heard.

Each leg speaks its own tone (:mod:`simulator.voices`); a listener's mix is projected on every pool tone
at once, and each call mate's tone must be at its own level when :func:`simulator.expected.should_hear`
says so, and absent otherwise. Energy at a tone no leg of the listener's call owns is audio leaking in
from another call. Everything is vectorised over the sampled listeners and their call mates.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import structlog
from bargein.mixer import MixerEngine
from bargein.mixer.tones import FULL_SCALE

from .expected import MODE_NAMES, ROLE_NAMES, should_hear
from .report import Report
from .scenario import Verification
from .tables import CallTable, LegTable
from .voices import POOL_HZ, ToneMeter

log = structlog.get_logger("bargein.simulator")

HEARD_MIN, HEARD_MAX = 0.8, 1.25  # a heard voice arrives at its own level (gain 1), within these ratios
SILENT_MAX = 0.02  # an unheard voice is at least 34 dB below its level (in practice at the rounding floor)


class RoutingChecker:
    """Checks a share of the live listeners each tick and counts (and lists the first) violations in ``report``."""

    def __init__(self, settings: Verification, engine: MixerEngine, legs: LegTable, calls: CallTable,
                 call_id_of: Callable[[int], str], report: Report, rng: np.random.Generator,
                 amplitude: float) -> None:
        self.settings = settings
        self.engine = engine
        self.legs = legs
        self.calls = calls
        self.call_id_of = call_id_of  # call slot -> call id, for the violation's record
        self.report = report
        self.rng = rng
        self.meter = ToneMeter(engine.rate)
        self.level = amplitude * FULL_SCALE

    def sample(self, t: int) -> np.ndarray:
        """This tick's listeners: each leg's turn comes every ``every_ticks`` ticks (a random sample of at most
        ``max_listeners / every_ticks`` per tick at scale), so the cost is the same every tick."""
        v = self.settings
        every = v.every_ticks
        act = self.legs.live
        lis = act[(act + t) % every == 0] if every > 1 else act
        cap = max(1, v.max_listeners // every)
        if lis.size > cap:
            lis = np.sort(self.rng.choice(lis, cap, replace=False))
        return lis

    def check(self, t: int) -> None:
        """Measure and check this tick's listeners (after the mixer's tick)."""
        lis = self.sample(t)
        if not lis.size:
            return
        legs = self.legs
        levels = self.meter.levels(self.engine.outputs(legs.mixer[lis].tolist())) / self.level  # (L, POOL)
        members = self.calls.members[legs.call[lis]]  # (L, M) sim legs of the listener's call
        valid = members >= 0
        m = np.where(valid, members, 0)
        lcol = lis[:, None]
        expect = should_hear(
            lcol, legs.role[lcol], legs.held[lcol],
            m, legs.role[m], legs.mode[m], legs.muted[m], legs.held[m], legs.talking[m],
        )
        pair = valid & (m != lcol)
        bins = np.where(valid, legs.bin[m], 0)
        lvl = np.take_along_axis(levels, bins, axis=1)
        ok = np.where(expect, (lvl >= HEARD_MIN) & (lvl <= HEARD_MAX), lvl <= SILENT_MAX)
        bad = pair & ~ok
        # energy at a frequency no leg of this call owns: audio leaking in from another call
        owned = np.zeros(levels.shape, dtype=bool)
        rows = np.broadcast_to(np.arange(lis.size)[:, None], bins.shape)
        owned[rows[valid], bins[valid]] = True
        leak = ~owned & (levels > SILENT_MAX)
        r = self.report
        r.checked_ticks += 1
        r.listener_checks += int(lis.size)
        r.routing_checks += int(pair.sum())
        n_bad = int(bad.sum()) + int(leak.sum())
        if n_bad:
            r.routing_violations += n_bad
            max_listed = self.settings.max_listed
            for li, mi in np.argwhere(bad)[: max(0, max_listed - len(r.violations))]:
                self._record(t, int(lis[li]), int(m[li, mi]), bool(expect[li, mi]), float(lvl[li, mi]))
            for li, b in np.argwhere(leak)[: max(0, max_listed - len(r.violations))]:
                self._record(t, int(lis[li]), -1, False, float(levels[li, b]), freq=int(POOL_HZ[b]))

    def _who(self, s: int) -> str:
        legs = self.legs
        role = ROLE_NAMES[legs.role[s]]
        mode = MODE_NAMES[legs.mode[s]]
        return f"{legs.names[s]} ({role}{', ' + mode if mode else ''})"

    def _record(self, t: int, listener: int, speaker: int, expected: bool, level: float,
                freq: int | None = None) -> None:
        legs = self.legs
        state = []
        if speaker >= 0:
            state = [k for k, on in (("muted", legs.muted[speaker]), ("held", legs.held[speaker]),
                                     ("talking", legs.talking[speaker])) if on]
        if legs.held[listener]:
            state.append("listener held")
        self.report.violations.append({
            "tick": t,
            "call": self.call_id_of(int(legs.call[listener])),
            "listener": self._who(listener),
            "speaker": self._who(speaker) if speaker >= 0 else f"<no leg of this call: {freq} Hz>",
            "expected": "hear" if expected else "silent",
            "measured_db": round(20 * math.log10(max(level, 1e-6)), 1),  # relative to the speaker's own level
            "speaker_state": state,
        })
        if len(self.report.violations) <= 5:
            log.warning("simulator.routing_violation", **self.report.violations[-1])
