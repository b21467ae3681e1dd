"""The event-driven simulator: calls, supervisors and voices on 20 ms ticks, checked against the routing table.

Control (arrivals, hang-ups, monitor/barge/coach/leave, mutes, holds, third parties) is a discrete-event
schedule: a heap of ``(tick, seq, kind, args)`` popped at the start of each tick, one Python call per
event, carried out through a :class:`~simulator.control.CallControl` (the real signaling core by
default). Audio and verification are per tick and vectorised over every leg: one gather builds every
leg's frame from a tone table, one ``push_many`` queues them, the mixer ticks, and on checked ticks
one ``outputs`` + one matmul measure every sampled listener against the expectation of
:mod:`simulator.expected`. Everything random comes from the scenario's seed, so the virtual clock
gives the same report for the same seed.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
from bargein.mixer import LegRouting, MixerEngine, RealtimeClock, Role, VirtualClock
from bargein.mixer.tones import FULL_SCALE

from .control import CallControl, DirectControl, PlacedCall, Refused
from .expected import (
    AGENT,
    BARGE,
    COACH,
    CUSTOMER,
    MODE_NAMES,
    MONITOR,
    NO_MODE,
    PARTY,
    ROLE_NAMES,
    SUPERVISOR,
    should_hear,
)
from .report import Report
from .scenario import Scenario
from .voices import POOL, POOL_HZ, SILENCE, ToneMeter, tone_table

log = structlog.get_logger("bargein.simulator")

TICK_S = 0.02
HEARD_MIN, HEARD_MAX = 0.8, 1.25  # a heard voice arrives at its own level (gain 1), within these ratios
SILENT_MAX = 0.02  # an unheard voice is at least 34 dB below its level (in practice at the rounding floor)
_MODE_CODE = {"monitor": MONITOR, "barge": BARGE, "coach": COACH}


@dataclass
class SimCall:
    idx: int
    gen: int
    call_id: str
    agent: str
    customer: str
    legs: dict[str, int] = field(default_factory=dict)  # user -> sim leg
    free_bins: list[int] = field(default_factory=list)
    supervisors: set[str] = field(default_factory=set)
    parties: int = 2
    muted_by: dict[str, str] = field(default_factory=dict)  # muted user -> who muted them


class Simulation:
    """One run of a :class:`Scenario` in-process: build it, then :meth:`run_virtual` or :meth:`run_realtime`."""

    def __init__(
        self,
        scenario: Scenario,
        control: Callable[[MixerEngine], CallControl] | None = None,
        engine: MixerEngine | None = None,
    ) -> None:
        self.sc = sc = scenario
        self.engine = engine or MixerEngine(sc.rate, sc.limits, buffer_frames=sc.buffer_frames)
        if control is None:
            control = default_control_factory()
        self.control: CallControl = control(self.engine)
        self.report = Report(scenario=sc.model_dump(mode="json"), clock=sc.clock, rate=sc.rate,
                             control=getattr(self.control, "name", type(self.control).__name__))
        ev, talk, check = np.random.SeedSequence(sc.seed).spawn(3)
        self.rng = np.random.default_rng(ev)
        self.talk_rng = np.random.default_rng(talk)
        self.check_rng = np.random.default_rng(check)
        self.table = tone_table(sc.rate, sc.voices.amplitude)
        self.meter = ToneMeter(sc.rate)
        self.level = sc.voices.amplitude * FULL_SCALE
        self.max_legs = sc.limits.max_legs
        self.t = 0
        self._seq = 0
        self._events: list[tuple[int, int, str, tuple[Any, ...]]] = []
        # legs: dense arrays indexed by sim leg id (ids are reused after a leg leaves)
        self._leg_cap = 0
        self._free_legs: list[int] = []
        self._n_legs = 0
        self.leg_names: list[str] = []
        self._grow_legs(1024)
        # calls: Python records for control, a (calls x max_legs) member table for the checker
        self._call_cap = 0
        self._grow_calls(256)
        self._free_calls: list[int] = []
        self._n_calls_slots = 0
        self.calls: dict[int, SimCall] = {}
        self._live: list[int] = []  # call idxs, for O(1) random choice
        self._live_pos: dict[int, int] = {}
        self._gen = 0
        self._n_customers = 0
        self._n_parties = 0
        # live legs in a dense order (swap-remove): position -> sim leg, its mixer leg and its current frame,
        # so a tick pushes one contiguous block without gathering; only talk toggles rewrite rows
        self._order = np.zeros(1024, np.int64)
        self._pos = np.full(1024, -1, np.int64)
        self._act_mixer: list[int] = []
        self._frames = np.zeros((1024, self.table.shape[1]), np.int16)
        self.agents = [f"agent-{i + 1}" for i in range(sc.agent_count)]
        self.supervisors = [f"supervisor-{i + 1}" for i in range(sc.supervisor_count)]
        self._sup_call: dict[str, int | None] = {s: None for s in self.supervisors}
        self._sup_session: dict[str, int] = {s: 0 for s in self.supervisors}
        self._sup_weights = np.array([sc.supervision.barge_weight, sc.supervision.coach_weight,
                                      sc.supervision.monitor_weight, sc.supervision.leave_weight,
                                      sc.supervision.mute_party_weight], dtype=float)
        if self._sup_weights.sum() <= 0:
            self._sup_weights[3] = 1.0
        self._sup_weights /= self._sup_weights.sum()
        self._prepared = False

    # ------------------------------------------------------------------ storage
    def _grow_legs(self, cap: int) -> None:
        old = self._leg_cap
        def grow(name: str, dtype: Any, fill: Any) -> None:
            arr = np.full(cap, fill, dtype=dtype)
            if old:
                arr[:old] = getattr(self, name)
            setattr(self, name, arr)
        grow("leg_mixer", np.int64, -1)
        grow("leg_call", np.int64, -1)
        grow("leg_role", np.int64, 0)
        grow("leg_mode", np.int64, 0)
        grow("leg_muted", bool, False)
        grow("leg_held", bool, False)
        grow("leg_talking", bool, False)
        grow("leg_next_toggle", np.int64, np.iinfo(np.int64).max)
        grow("leg_bin", np.int64, SILENCE)
        grow("leg_active", bool, False)
        if old:
            pos = np.full(cap, -1, np.int64)
            pos[:old] = self._pos
            self._pos = pos
        self.leg_names.extend([""] * (cap - old))
        self._free_legs.extend(range(cap - 1, old - 1, -1))
        self._leg_cap = cap

    def _grow_calls(self, cap: int) -> None:
        members = np.full((cap, self.max_legs), -1, dtype=np.int64)
        if self._call_cap:
            members[: self._call_cap] = self.call_members
        self.call_members = members
        self._call_cap = cap

    def _new_leg(self, c: SimCall, user: str, mixer_leg: int, role: int, mode: int = NO_MODE) -> int:
        if not self._free_legs:
            self._grow_legs(self._leg_cap * 2)
        s = self._free_legs.pop()
        self.leg_mixer[s] = mixer_leg
        self.leg_call[s] = c.idx
        self.leg_role[s] = role
        self.leg_mode[s] = mode
        self.leg_muted[s] = self.leg_held[s] = False
        talking = bool(self.talk_rng.random() < 0.5)
        self.leg_talking[s] = talking
        self.leg_next_toggle[s] = self.t + self._spurt(talking)
        self.leg_bin[s] = c.free_bins.pop()
        self.leg_active[s] = True
        self.leg_names[s] = user
        n = self._n_legs
        if n == self._order.shape[0]:
            self._order = np.concatenate([self._order, np.zeros(n, np.int64)])
            self._frames = np.concatenate([self._frames, np.zeros_like(self._frames)])
        self._order[n] = s
        self._pos[s] = n
        self._act_mixer.append(mixer_leg)
        self._frames[n] = self.table[self.leg_bin[s] if talking else SILENCE]
        row = self.call_members[c.idx]
        row[np.flatnonzero(row < 0)[0]] = s
        c.legs[user] = s
        self._n_legs += 1
        self.report.peak_legs = max(self.report.peak_legs, self._n_legs)
        return s

    def _drop_leg(self, c: SimCall, user: str) -> None:
        s = c.legs.pop(user)
        p, last = int(self._pos[s]), self._n_legs - 1
        if p != last:
            moved = int(self._order[last])
            self._order[p] = moved
            self._pos[moved] = p
            self._act_mixer[p] = self._act_mixer[last]
            self._frames[p] = self._frames[last]
        self._act_mixer.pop()
        self._pos[s] = -1
        c.free_bins.append(int(self.leg_bin[s]))
        self.leg_active[s] = False
        self.leg_mixer[s] = -1
        self.leg_next_toggle[s] = np.iinfo(np.int64).max
        self.leg_bin[s] = SILENCE
        row = self.call_members[c.idx]
        row[row == s] = -1
        c.muted_by.pop(user, None)
        self._free_legs.append(s)
        self._n_legs -= 1

    def _spurt(self, talking: bool) -> int:
        v = self.sc.voices
        mean = v.talk_mean_s if talking else v.silence_mean_s
        return max(1, int(self.talk_rng.exponential(mean) / TICK_S))

    # ------------------------------------------------------------------ events
    def _at(self, tick: int, kind: str, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (tick, self._seq, kind, args))

    def _after(self, seconds: float, kind: str, *args: Any) -> None:
        self._at(self.t + max(1, int(round(seconds / TICK_S))), kind, *args)

    def _exp(self, mean_s: float) -> float:
        return float(self.rng.exponential(mean_s))

    def _handle_time(self) -> float:
        h = self.sc.handle_time
        if h.distribution == "exponential":
            x = self.rng.exponential(h.mean_s)
        elif h.distribution == "lognormal":
            x = self.rng.lognormal(math.log(h.mean_s) - h.sigma**2 / 2, h.sigma)
        elif h.distribution == "uniform":
            x = self.rng.uniform(h.min_s, h.max_s or max(h.min_s, 2 * h.mean_s - h.min_s))
        else:
            x = h.mean_s
        x = max(h.min_s, float(x))
        return min(x, h.max_s) if h.max_s else x

    def prepare(self) -> None:
        """Sign everybody in, start the warm-start calls and the arrival process (before the clock starts)."""
        if self._prepared:
            return
        self._prepared = True
        t0 = time.perf_counter()
        self.control.setup(self.agents, self.supervisors)
        if self.sc.warm_start:
            for _ in range(self.sc.calls):
                h = self._handle_time()
                residual = h if self.sc.handle_time.distribution == "exponential" else h * float(self.rng.random())
                self._start_call(residual)
        self._after(self._exp(1 / self.sc.arrival_rate), "arrival")
        for sup in self.supervisors:
            self._after(self._exp(self.sc.supervision.idle_mean_s), "sup_idle", sup)
        self.report.setup_s = round(time.perf_counter() - t0, 3)
        log.info("simulator.prepared", calls=len(self.calls), legs=self._n_legs, setup_s=self.report.setup_s)

    def _run_events(self) -> None:
        ev = self._events
        while ev and ev[0][0] <= self.t:
            _, _, kind, args = heapq.heappop(ev)
            getattr(self, "_on_" + kind)(*args)

    def _live_call(self, idx: int, gen: int) -> SimCall | None:
        c = self.calls.get(idx)
        return c if c is not None and c.gen == gen else None

    # -- calls
    def _on_arrival(self) -> None:
        self._start_call(self._handle_time())
        self._after(self._exp(1 / self.sc.arrival_rate), "arrival")

    def _start_call(self, handle_s: float) -> None:
        self._n_customers += 1
        customer = f"customer-{self._n_customers}"
        placed = self.control.place_call(customer)
        if isinstance(placed, Refused):
            self.report.calls_refused += 1
            self.report.refuse(placed.code, "call: " + placed.reason)
            return
        assert isinstance(placed, PlacedCall)
        if self._free_calls:
            idx = self._free_calls.pop()
        else:
            if self._n_calls_slots == self._call_cap:
                self._grow_calls(self._call_cap * 2)
            idx = self._n_calls_slots
            self._n_calls_slots += 1
        self._gen += 1
        bins = self.rng.permutation(POOL)[: self.max_legs].tolist()
        c = SimCall(idx, self._gen, placed.call_id, placed.agent, customer, free_bins=bins)
        self.calls[idx] = c
        self._live_pos[idx] = len(self._live)
        self._live.append(idx)
        self._new_leg(c, customer, placed.customer_leg, CUSTOMER)
        self._new_leg(c, placed.agent, placed.agent_leg, AGENT)
        self.report.calls_started += 1
        self.report.peak_concurrent_calls = max(self.report.peak_concurrent_calls, len(self.calls))
        by = "agent" if self.rng.random() < self.sc.parties.agent_hangup_probability else "customer"
        self._after(handle_s, "hangup", idx, c.gen, by)
        p = self.sc.parties
        if p.mute_per_min > 0:
            self._after(self._exp(60 / (2 * p.mute_per_min)), "self_mute", idx, c.gen)
        if p.hold_per_min > 0:
            self._after(self._exp(60 / p.hold_per_min), "hold", idx, c.gen)
        if p.third_party_per_min > 0:
            self._after(self._exp(60 / p.third_party_per_min), "third_party", idx, c.gen)

    def _on_hangup(self, idx: int, gen: int, by: str) -> None:
        c = self._live_call(idx, gen)
        if c is None:
            return
        ended = self.control.hangup(c.call_id, by)  # type: ignore[arg-type]
        told = {e.supervisor for e in ended if e.reason}
        for sup in sorted(c.supervisors):
            self.report.supervision_ended_by_call_end += 1
            if getattr(self.control, "reports_session_ends", False) and sup not in told:
                self.report.supervision_end_reasons_missing += 1
            self._sup_free(sup)
        for user in list(c.legs):
            self._drop_leg(c, user)
        del self.calls[idx]
        pos = self._live_pos.pop(idx)
        last = self._live.pop()
        if last != idx:
            self._live[pos] = last
            self._live_pos[last] = pos
        self._free_calls.append(idx)
        self.report.calls_completed += 1
        if by == "agent":
            self.report.calls_hung_up_by_agent += 1
        else:
            self.report.calls_hung_up_by_customer += 1

    def _on_self_mute(self, idx: int, gen: int) -> None:
        c = self._live_call(idx, gen)
        if c is None:
            return
        p = self.sc.parties
        self._after(self._exp(60 / (2 * p.mute_per_min)), "self_mute", idx, gen)
        who = c.agent if self.rng.random() < 0.5 else c.customer
        s = c.legs[who]
        if self.leg_muted[s]:
            return
        res = self.control.set_muted(c.call_id, who, True, by=who)
        if isinstance(res, Refused):
            self.report.refuse(res.code, "self-mute: " + res.reason)
            return
        self.leg_muted[s] = True
        c.muted_by[who] = who
        self.report.party_mutes += 1
        self._after(self._exp(p.mute_mean_s), "self_unmute", idx, gen, who)

    def _on_self_unmute(self, idx: int, gen: int, who: str) -> None:
        c = self._live_call(idx, gen)
        if c is None or c.muted_by.get(who) != who:
            return
        res = self.control.set_muted(c.call_id, who, False, by=who)
        if isinstance(res, Refused):
            self.report.refuse(res.code, "self-unmute: " + res.reason)
            return
        self.leg_muted[c.legs[who]] = False
        del c.muted_by[who]

    def _on_hold(self, idx: int, gen: int) -> None:
        c = self._live_call(idx, gen)
        if c is None:
            return
        p = self.sc.parties
        self._after(self._exp(60 / p.hold_per_min), "hold", idx, gen)
        s = c.legs[c.customer]
        if self.leg_held[s]:
            return
        res = self.control.set_held(c.call_id, c.customer, True, by=c.agent)
        if isinstance(res, Refused):
            self.report.refuse(res.code, "hold: " + res.reason)
            return
        self.leg_held[s] = True
        self.report.holds += 1
        self._after(self._exp(p.hold_mean_s), "unhold", idx, gen)

    def _on_unhold(self, idx: int, gen: int) -> None:
        c = self._live_call(idx, gen)
        if c is None:
            return
        res = self.control.set_held(c.call_id, c.customer, False, by=c.agent)
        if isinstance(res, Refused):
            self.report.refuse(res.code, "unhold: " + res.reason)
            return
        self.leg_held[c.legs[c.customer]] = False

    def _on_third_party(self, idx: int, gen: int) -> None:
        c = self._live_call(idx, gen)
        if c is None:
            return
        p = self.sc.parties
        self._after(self._exp(60 / p.third_party_per_min), "third_party", idx, gen)
        self._n_parties += 1
        party = f"party-{self._n_parties}"
        res = self.control.add_party(c.call_id, c.agent, party)
        if isinstance(res, Refused):
            self.report.refuse(res.code, "add party: " + res.reason)
            return
        self._new_leg(c, party, res, PARTY)
        c.parties += 1
        self.report.third_parties += 1
        self._after(self._exp(p.third_party_mean_s), "party_leaves", idx, gen, party)

    def _on_party_leaves(self, idx: int, gen: int, party: str) -> None:
        c = self._live_call(idx, gen)
        if c is None or party not in c.legs:
            return
        self.control.drop_party(c.call_id, party)
        self._drop_leg(c, party)
        c.parties -= 1

    # -- supervisors
    def _sup_free(self, sup: str) -> None:
        self._sup_call[sup] = None
        self._sup_session[sup] += 1
        self._after(self._exp(self.sc.supervision.idle_mean_s), "sup_idle", sup)

    def _on_sup_idle(self, sup: str) -> None:
        if self._sup_call[sup] is not None:
            return
        if not self._live:
            self._after(self._exp(self.sc.supervision.idle_mean_s), "sup_idle", sup)
            return
        idx = self._live[int(self.rng.integers(len(self._live)))]
        c = self.calls[idx]
        res = self.control.monitor(sup, c.call_id)
        if isinstance(res, Refused):
            self.report.refuse(res.code, "monitor: " + res.reason)
            self._after(self._exp(self.sc.supervision.idle_mean_s), "sup_idle", sup)
            return
        self._new_leg(c, sup, res, SUPERVISOR, MONITOR)
        c.supervisors.add(sup)
        self._sup_call[sup] = idx
        self._sup_session[sup] += 1
        self.report.monitor_sessions += 1
        self._after(self._exp(self.sc.supervision.action_interval_s), "sup_act", sup, self._sup_session[sup])

    def _on_sup_act(self, sup: str, session: int) -> None:
        if self._sup_session[sup] != session or self._sup_call[sup] is None:
            return
        c = self.calls[self._sup_call[sup]]
        s = c.legs[sup]
        action = ("barge", "coach", "monitor", "leave", "mute_party")[int(self.rng.choice(5, p=self._sup_weights))]
        if action == "leave":
            self.control.leave(sup, c.call_id)
            # a supervisor never leaves a party muted behind them (product.md, known user pains)
            for who, by in list(c.muted_by.items()):
                if by == sup:
                    self.leg_muted[c.legs[who]] = False
                    del c.muted_by[who]
            self._drop_leg(c, sup)
            c.supervisors.discard(sup)
            self.report.supervisor_leaves += 1
            self._sup_free(sup)
            return
        self._after(self._exp(self.sc.supervision.action_interval_s), "sup_act", sup, session)
        if action == "mute_party":
            if self.leg_mode[s] != BARGE:
                return
            who = c.agent if self.rng.random() < 0.5 else c.customer
            by = c.muted_by.get(who)
            if by not in (None, sup):
                return
            res = self.control.set_muted(c.call_id, who, by is None, by=sup)
            if isinstance(res, Refused):
                self.report.refuse(res.code, "supervisor mute: " + res.reason)
                return
            self.leg_muted[c.legs[who]] = by is None
            if by is None:
                c.muted_by[who] = sup
                self.report.supervisor_mutes += 1
            else:
                del c.muted_by[who]
            return
        code = _MODE_CODE[action]
        if self.leg_mode[s] == code:
            return
        res = self.control.set_mode(sup, c.call_id, action)  # type: ignore[arg-type]
        if isinstance(res, Refused):
            self.report.refuse(res.code, f"{action}: {res.reason}")
            return
        if self.leg_mode[s] == BARGE:
            # parties this supervisor muted while barging are unmuted when the barge ends (nobody else could)
            for who, by in list(c.muted_by.items()):
                if by == sup:
                    self.leg_muted[c.legs[who]] = False
                    del c.muted_by[who]
        self.leg_mode[s] = code
        if code == BARGE:
            self.report.barge_toggles += 1
        elif code == COACH:
            self.report.coach_toggles += 1
        else:
            self.report.monitor_toggles += 1

    # ------------------------------------------------------------------ the tick
    def _active(self) -> np.ndarray:
        """Sim legs in dense order (position i is pushed from ``_frames[i]`` to mixer leg ``_act_mixer[i]``)."""
        return self._order[: self._n_legs]

    def step(self) -> None:
        """One 20 ms tick: due events, talk spurts, push every leg's frame, mix, check (on checked ticks)."""
        self._run_events()
        due = np.flatnonzero(self.leg_next_toggle <= self.t)
        if due.size:
            talking = ~self.leg_talking[due]
            self.leg_talking[due] = talking
            v = self.sc.voices
            means = np.where(talking, v.talk_mean_s, v.silence_mean_s)
            spurts = np.maximum(1, (self.talk_rng.exponential(means) / TICK_S).astype(np.int64))
            self.leg_next_toggle[due] = self.t + spurts
            self._frames[self._pos[due]] = self.table[np.where(talking, self.leg_bin[due], SILENCE)]
        act = self._active()
        if act.size:
            self.engine.push_many(self._act_mixer, self._frames[: act.size])
        self.engine.tick()
        if act.size:
            self._check(act)
        self.t += 1

    def _check(self, act: np.ndarray) -> None:
        """Check this tick's share of listeners: each leg's turn comes every ``every_ticks`` ticks (a random
        sample of at most ``max_listeners / every_ticks`` per tick at scale), so the cost is the same every tick."""
        v = self.sc.verification
        every = v.every_ticks
        lis = act[(act + self.t) % every == 0] if every > 1 else act
        cap = max(1, v.max_listeners // every)
        if lis.size > cap:
            lis = np.sort(self.check_rng.choice(lis, cap, replace=False))
        if not lis.size:
            return
        levels = self.meter.levels(self.engine.outputs(self.leg_mixer[lis].tolist())) / self.level  # (L, POOL)
        members = self.call_members[self.leg_call[lis]]  # (L, M) sim legs of the listener's call
        valid = members >= 0
        m = np.where(valid, members, 0)
        lcol = lis[:, None]
        expect = should_hear(
            lcol, self.leg_role[lcol], self.leg_held[lcol],
            m, self.leg_role[m], self.leg_mode[m], self.leg_muted[m], self.leg_held[m], self.leg_talking[m],
        )
        pair = valid & (m != lcol)
        bins = np.where(valid, self.leg_bin[m], 0)
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
            for li, mi in np.argwhere(bad)[: max(0, v.max_listed - len(r.violations))]:
                self._record(int(lis[li]), int(m[li, mi]), bool(expect[li, mi]), float(lvl[li, mi]))
            for li, b in np.argwhere(leak)[: max(0, v.max_listed - len(r.violations))]:
                self._record(int(lis[li]), -1, False, float(levels[li, b]), freq=int(POOL_HZ[b]))

    def _record(self, listener: int, speaker: int, expected: bool, level: float, freq: int | None = None) -> None:
        c = self.calls[int(self.leg_call[listener])]
        def who(s: int) -> str:
            role = ROLE_NAMES[self.leg_role[s]]
            mode = MODE_NAMES[self.leg_mode[s]]
            return f"{self.leg_names[s]} ({role}{', ' + mode if mode else ''})"
        state = []
        if speaker >= 0:
            state = [k for k, on in (("muted", self.leg_muted[speaker]), ("held", self.leg_held[speaker]),
                                     ("talking", self.leg_talking[speaker])) if on]
        if self.leg_held[listener]:
            state.append("listener held")
        self.report.violations.append({
            "tick": self.t,
            "call": c.call_id,
            "listener": who(listener),
            "speaker": who(speaker) if speaker >= 0 else f"<no leg of this call: {freq} Hz>",
            "expected": "hear" if expected else "silent",
            "measured_db": round(20 * math.log10(max(level, 1e-6)), 1),  # relative to the speaker's own level
            "speaker_state": state,
        })
        if len(self.report.violations) <= 5:
            log.warning("simulator.routing_violation", **self.report.violations[-1])

    # ------------------------------------------------------------------ running
    def _finish(self, clock: VirtualClock | RealtimeClock, wall: float) -> Report:
        r = self.report
        r.ticks = self.t
        r.simulated_s = round(self.t * TICK_S, 3)
        r.deadline_misses = clock.stats.deadline_misses
        r.tick_ms = {"p50": round(clock.stats.percentile("compute_ms", 50), 3),
                     "p99": round(clock.stats.percentile("compute_ms", 99), 3),
                     "max": round(clock.stats.max_compute_ms, 3)}
        counters = self.engine.counters
        r.frames_missing, r.frames_dropped = counters.frames_missing, counters.frames_dropped
        r.wall_time_s = round(wall, 3)
        if self.sc.clock == "virtual":
            r.notes.append("virtual clock: deadline_misses counts ticks whose compute exceeded 20 ms")
        log.info("simulator.finished", ticks=r.ticks, calls_started=r.calls_started,
                 routing_checks=r.routing_checks, routing_violations=r.routing_violations)
        return r

    def run_virtual(self, progress: Callable[[int], object] | None = None, chunk: int = 25) -> Report:
        self.prepare()
        clock = VirtualClock(self.step, keep_stats=max(1, self.sc.ticks))
        t0 = time.perf_counter()
        total = self.sc.ticks
        while clock.ticks < total:
            clock.advance(min(chunk, total - clock.ticks))
            if progress:
                progress(clock.ticks)
        return self._finish(clock, time.perf_counter() - t0)

    def _prime(self) -> None:
        """Touch every buffer once before real time starts (first-touch page faults would miss deadlines)."""
        # the simulator's own per-leg and per-call arrays too: doubling them inside a tick costs tens of ms
        legs = 4 * self.sc.calls + 64
        if self._leg_cap < legs:
            self._grow_legs(legs)
        if self._order.shape[0] < legs:
            n = self._order.shape[0]
            self._order = np.concatenate([self._order, np.zeros(legs - n, np.int64)])
            self._frames = np.concatenate([self._frames, np.zeros((legs - n, self._frames.shape[1]), np.int16)])
        if self._call_cap < 2 * self.sc.calls + 16:
            self._grow_calls(2 * self.sc.calls + 16)
        # grow the mixer's pools once, now: a pool doubling mid-run copies its buffers inside a tick
        dummies = []
        for width, share in ((2, 1.6), (3, 0.5), (4, 0.2), (5, 0.1), (6, 0.05)):
            for i in range(int(self.sc.calls * share) + 4):
                key = ("prime", width, i)
                for _ in range(width):
                    self.engine.add_leg(key, LegRouting(Role.AGENT))
                dummies.append(key)
        for key in reversed(dummies):
            self.engine.remove_call(key)
        act = self._active()
        if act.size:
            self.engine.push_many(self._act_mixer, np.zeros((act.size, self.table.shape[1]), np.int16))
            self.engine.tick()
            lis = self._act_mixer[: self.sc.verification.max_listeners]
            self.meter.levels(self.engine.outputs(lis))  # first use of the matmul starts BLAS threads
        gc.collect()
        gc.freeze()  # the set-up's objects never need scanning again: shorter collector pauses

    async def run_realtime(self, progress: Callable[[int], object] | None = None) -> Report:
        self.prepare()
        self._prime()
        clock = RealtimeClock(self.step, keep_stats=max(1, self.sc.ticks))
        if progress:
            clock.add_listener(lambda s: progress(s.index + 1) if s.index % 25 == 0 else None)
        t0 = time.perf_counter()
        await clock.run(self.sc.duration_s)
        self.report.ticks_skipped = clock.skipped
        return self._finish(clock, time.perf_counter() - t0)

    def run(self, progress: Callable[[int], object] | None = None) -> Report:
        try:
            if self.sc.clock == "realtime":
                return asyncio.run(self.run_realtime(progress))
            return self.run_virtual(progress)
        finally:
            self.control.close()


def default_control_factory() -> Callable[[MixerEngine], CallControl]:
    """The real signaling core when it is available, else the direct mixer control."""
    try:
        from .signaling_control import SignalingControl
    except ImportError:  # pragma: no cover - only before the signaling package exists
        log.warning("simulator.no_signaling_core", fallback="direct")
        return DirectControl
    return SignalingControl
