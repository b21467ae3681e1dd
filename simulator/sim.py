"""The event-driven simulator: calls, supervisors and voices on 20 ms ticks, checked against the routing table.

Control (arrivals, hang-ups, monitor/barge/coach/leave, mutes, holds, third parties) is a discrete-event
schedule (:mod:`simulator.events`) popped at the start of each tick, one Python call per event, carried
out through a :class:`~simulator.control.CallControl` (the real signaling core by default). Audio and
verification are per tick and vectorised over every leg of the leg table (:mod:`simulator.tables`): talk
toggles change which tone-table row a few live legs speak, the mixer ticks with them as its input, and
on checked ticks the :class:`~simulator.checker.RoutingChecker` measures the sampled listeners. Everything
random comes from the scenario's seed, so the virtual clock gives the same report for the same seed.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
from bargein.mixer import LegRouting, MixerEngine, RealtimeClock, Role, VirtualClock

from .checker import RoutingChecker
from .control import CallControl, DirectControl, Mode, PlacedCall, Refused
from .events import (
    Arrival,
    CallEvent,
    Event,
    Hangup,
    Hold,
    PartyLeaves,
    Schedule,
    SelfMute,
    SelfUnmute,
    SupervisorAct,
    SupervisorIdle,
    ThirdParty,
    Unhold,
)
from .expected import AGENT, BARGE, COACH, CUSTOMER, MONITOR, NO_MODE, PARTY, SUPERVISOR
from .report import Report
from .scenario import Scenario
from .tables import CallTable, LegTable
from .voices import POOL, SILENCE, tone_table

log = structlog.get_logger("bargein.simulator")

TICK_S = 0.02
_MODE_CODE: dict[Mode, int] = {"monitor": MONITOR, "barge": BARGE, "coach": COACH}
_SUP_ACTIONS = ("barge", "coach", "monitor", "leave", "mute_party")  # in the order of the weights


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
        self.table = tone_table(sc.rate, sc.voices.amplitude)
        self.max_legs = sc.limits.max_legs
        self.t = 0
        self.schedule = Schedule()
        self._handlers: dict[type[Event], Callable[[Any], None]] = {
            Arrival: self._on_arrival,
            Hangup: self._on_hangup,
            SelfMute: self._on_self_mute,
            SelfUnmute: self._on_self_unmute,
            Hold: self._on_hold,
            Unhold: self._on_unhold,
            ThirdParty: self._on_third_party,
            PartyLeaves: self._on_party_leaves,
            SupervisorIdle: self._on_supervisor_idle,
            SupervisorAct: self._on_supervisor_act,
        }
        self.legs = LegTable()
        # calls: Python records for control, the call table (members per slot) for the checker
        self.call_table = CallTable(self.max_legs)
        self.calls: dict[int, SimCall] = {}
        self._live: list[int] = []  # call idxs, for O(1) random choice
        self._live_pos: dict[int, int] = {}
        self._gen = 0
        self._n_customers = 0
        self._n_parties = 0
        self.checker = RoutingChecker(sc.verification, self.engine, self.legs, self.call_table,
                                      lambda idx: self.calls[idx].call_id, self.report,
                                      np.random.default_rng(check), sc.voices.amplitude)
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
        self._froze_heap = False

    # ------------------------------------------------------------------ legs
    def _new_leg(self, c: SimCall, user: str, mixer_leg: int, role: int, mode: int = NO_MODE) -> int:
        talking = bool(self.talk_rng.random() < 0.5)
        next_toggle = self.t + self._spurt(talking)
        tone = c.free_bins.pop()
        s = self.legs.add(name=user, call=c.idx, mixer_leg=mixer_leg, role=role, mode=mode, tone=tone,
                          talking=talking, next_toggle=next_toggle, speaks=tone if talking else SILENCE)
        self.call_table.join(c.idx, s)
        c.legs[user] = s
        self.report.peak_legs = max(self.report.peak_legs, self.legs.n)
        return s

    def _drop_leg(self, c: SimCall, user: str) -> None:
        s = c.legs.pop(user)
        c.free_bins.append(int(self.legs.bin[s]))
        self.legs.remove(s)
        self.call_table.leave(c.idx, s)
        c.muted_by.pop(user, None)

    def _spurt(self, talking: bool) -> int:
        v = self.sc.voices
        mean = v.talk_mean_s if talking else v.silence_mean_s
        return max(1, int(self.talk_rng.exponential(mean) / TICK_S))

    # -- mutes: the leg table's column and the call's record of who muted whom change together
    def _mute(self, c: SimCall, who: str, by: str) -> None:
        self.legs.muted[c.legs[who]] = True
        c.muted_by[who] = by

    def _unmute(self, c: SimCall, who: str) -> None:
        self.legs.muted[c.legs[who]] = False
        del c.muted_by[who]

    def _release_mutes(self, c: SimCall, sup: str) -> None:
        """Unmute the parties ``sup`` muted, when their barge ends or they leave: a supervisor never leaves a
        party muted behind them (docs/behaviour.md), and nobody else could unmute them."""
        for who, by in list(c.muted_by.items()):
            if by == sup:
                self._unmute(c, who)

    # ------------------------------------------------------------------ events
    def _after(self, seconds: float, event: Event) -> None:
        self.schedule.at(self.t + max(1, int(round(seconds / TICK_S))), event)

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
        self._after(self._exp(1 / self.sc.arrival_rate), Arrival())
        for sup in self.supervisors:
            self._after(self._exp(self.sc.supervision.idle_mean_s), SupervisorIdle(sup))
        self.report.setup_s = round(time.perf_counter() - t0, 3)
        log.info("simulator.prepared", calls=len(self.calls), legs=self.legs.n, setup_s=self.report.setup_s)

    def _run_events(self) -> None:
        handlers = self._handlers
        for event in self.schedule.due(self.t):
            handlers[type(event)](event)

    def _live_call(self, e: CallEvent) -> SimCall | None:
        c = self.calls.get(e.idx)
        return c if c is not None and c.gen == e.gen else None

    # -- calls
    def _on_arrival(self, e: Arrival) -> None:
        self._start_call(self._handle_time())
        self._after(self._exp(1 / self.sc.arrival_rate), Arrival())

    def _start_call(self, handle_s: float) -> None:
        self._n_customers += 1
        customer = f"customer-{self._n_customers}"
        placed = self.control.place_call(customer)
        if isinstance(placed, Refused):
            self.report.calls_refused += 1
            self.report.refuse(placed.code, "call: " + placed.reason)
            return
        assert isinstance(placed, PlacedCall)
        idx = self.call_table.open()
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
        self._after(handle_s, Hangup(idx, c.gen, by))
        p = self.sc.parties
        if p.mute_per_min > 0:
            self._after(self._exp(60 / (2 * p.mute_per_min)), SelfMute(idx, c.gen))
        if p.hold_per_min > 0:
            self._after(self._exp(60 / p.hold_per_min), Hold(idx, c.gen))
        if p.third_party_per_min > 0:
            self._after(self._exp(60 / p.third_party_per_min), ThirdParty(idx, c.gen))

    def _on_hangup(self, e: Hangup) -> None:
        c = self._live_call(e)
        if c is None:
            return
        ended = self.control.hangup(c.call_id, e.by)
        told = {x.supervisor for x in ended if x.reason}
        for sup in sorted(c.supervisors):
            self.report.supervision_ended_by_call_end += 1
            if getattr(self.control, "reports_session_ends", False) and sup not in told:
                self.report.supervision_end_reasons_missing += 1
            self._sup_free(sup)
        for user in list(c.legs):
            self._drop_leg(c, user)
        del self.calls[c.idx]
        pos = self._live_pos.pop(c.idx)
        last = self._live.pop()
        if last != c.idx:
            self._live[pos] = last
            self._live_pos[last] = pos
        self.call_table.close(c.idx)
        self.report.calls_completed += 1
        if e.by == "agent":
            self.report.calls_hung_up_by_agent += 1
        else:
            self.report.calls_hung_up_by_customer += 1

    def _on_self_mute(self, e: SelfMute) -> None:
        c = self._live_call(e)
        if c is None:
            return
        p = self.sc.parties
        self._after(self._exp(60 / (2 * p.mute_per_min)), SelfMute(e.idx, e.gen))
        who = c.agent if self.rng.random() < 0.5 else c.customer
        if self.legs.muted[c.legs[who]]:
            return
        res = self.control.set_muted(c.call_id, who, True, by=who)
        if isinstance(res, Refused):
            self.report.refuse(res.code, "self-mute: " + res.reason)
            return
        self._mute(c, who, by=who)
        self.report.party_mutes += 1
        self._after(self._exp(p.mute_mean_s), SelfUnmute(e.idx, e.gen, who))

    def _on_self_unmute(self, e: SelfUnmute) -> None:
        c = self._live_call(e)
        if c is None or c.muted_by.get(e.who) != e.who:
            return
        res = self.control.set_muted(c.call_id, e.who, False, by=e.who)
        if isinstance(res, Refused):
            self.report.refuse(res.code, "self-unmute: " + res.reason)
            return
        self._unmute(c, e.who)

    def _on_hold(self, e: Hold) -> None:
        c = self._live_call(e)
        if c is None:
            return
        p = self.sc.parties
        self._after(self._exp(60 / p.hold_per_min), Hold(e.idx, e.gen))
        s = c.legs[c.customer]
        if self.legs.held[s]:
            return
        res = self.control.set_held(c.call_id, c.customer, True, by=c.agent)
        if isinstance(res, Refused):
            self.report.refuse(res.code, "hold: " + res.reason)
            return
        self.legs.held[s] = True
        self.report.holds += 1
        self._after(self._exp(p.hold_mean_s), Unhold(e.idx, e.gen))

    def _on_unhold(self, e: Unhold) -> None:
        c = self._live_call(e)
        if c is None:
            return
        res = self.control.set_held(c.call_id, c.customer, False, by=c.agent)
        if isinstance(res, Refused):
            self.report.refuse(res.code, "unhold: " + res.reason)
            return
        self.legs.held[c.legs[c.customer]] = False

    def _on_third_party(self, e: ThirdParty) -> None:
        c = self._live_call(e)
        if c is None:
            return
        p = self.sc.parties
        self._after(self._exp(60 / p.third_party_per_min), ThirdParty(e.idx, e.gen))
        self._n_parties += 1
        party = f"party-{self._n_parties}"
        res = self.control.add_party(c.call_id, c.agent, party)
        if isinstance(res, Refused):
            self.report.refuse(res.code, "add party: " + res.reason)
            return
        self._new_leg(c, party, res, PARTY)
        c.parties += 1
        self.report.third_parties += 1
        self._after(self._exp(p.third_party_mean_s), PartyLeaves(e.idx, e.gen, party))

    def _on_party_leaves(self, e: PartyLeaves) -> None:
        c = self._live_call(e)
        if c is None or e.party not in c.legs:
            return
        self.control.drop_party(c.call_id, e.party)
        self._drop_leg(c, e.party)
        c.parties -= 1

    # -- supervisors
    def _sup_free(self, sup: str) -> None:
        self._sup_call[sup] = None
        self._sup_session[sup] += 1
        self._after(self._exp(self.sc.supervision.idle_mean_s), SupervisorIdle(sup))

    def _on_supervisor_idle(self, e: SupervisorIdle) -> None:
        sup = e.supervisor
        if self._sup_call[sup] is not None:
            return
        if not self._live:
            self._after(self._exp(self.sc.supervision.idle_mean_s), SupervisorIdle(sup))
            return
        idx = self._live[int(self.rng.integers(len(self._live)))]
        c = self.calls[idx]
        res = self.control.monitor(sup, c.call_id)
        if isinstance(res, Refused):
            self.report.refuse(res.code, "monitor: " + res.reason)
            self._after(self._exp(self.sc.supervision.idle_mean_s), SupervisorIdle(sup))
            return
        self._new_leg(c, sup, res, SUPERVISOR, MONITOR)
        c.supervisors.add(sup)
        self._sup_call[sup] = idx
        self._sup_session[sup] += 1
        self.report.monitor_sessions += 1
        self._after(self._exp(self.sc.supervision.action_interval_s), SupervisorAct(sup, self._sup_session[sup]))

    def _on_supervisor_act(self, e: SupervisorAct) -> None:
        sup = e.supervisor
        idx = self._sup_call[sup]
        if self._sup_session[sup] != e.session or idx is None:
            return
        c = self.calls[idx]
        action = _SUP_ACTIONS[int(self.rng.choice(5, p=self._sup_weights))]
        if action == "leave":
            self.control.leave(sup, c.call_id)
            self._release_mutes(c, sup)
            self._drop_leg(c, sup)
            c.supervisors.discard(sup)
            self.report.supervisor_leaves += 1
            self._sup_free(sup)
            return
        self._after(self._exp(self.sc.supervision.action_interval_s), e)
        if action == "mute_party":
            self._supervisor_mute(c, sup)
        else:
            self._supervisor_mode(c, sup, action)  # type: ignore[arg-type]

    def _supervisor_mute(self, c: SimCall, sup: str) -> None:
        """A barging supervisor mutes a party, or unmutes one they muted."""
        if self.legs.mode[c.legs[sup]] != BARGE:
            return
        who = c.agent if self.rng.random() < 0.5 else c.customer
        by = c.muted_by.get(who)
        if by not in (None, sup):
            return
        res = self.control.set_muted(c.call_id, who, by is None, by=sup)
        if isinstance(res, Refused):
            self.report.refuse(res.code, "supervisor mute: " + res.reason)
            return
        if by is None:
            self._mute(c, who, by=sup)
            self.report.supervisor_mutes += 1
        else:
            self._unmute(c, who)

    def _supervisor_mode(self, c: SimCall, sup: str, action: Mode) -> None:
        s = c.legs[sup]
        code = _MODE_CODE[action]
        if self.legs.mode[s] == code:
            return
        res = self.control.set_mode(sup, c.call_id, action)
        if isinstance(res, Refused):
            self.report.refuse(res.code, f"{action}: {res.reason}")
            return
        if self.legs.mode[s] == BARGE:
            self._release_mutes(c, sup)
        self.legs.mode[s] = code
        if code == BARGE:
            self.report.barge_toggles += 1
        elif code == COACH:
            self.report.coach_toggles += 1
        else:
            self.report.monitor_toggles += 1

    # ------------------------------------------------------------------ the tick
    def step(self) -> None:
        """One 20 ms tick: due events, talk spurts, push every leg's frame, mix, check (on checked ticks)."""
        self._run_events()
        legs = self.legs
        due = np.flatnonzero(legs.next_toggle <= self.t)
        if due.size:
            talking = ~legs.talking[due]
            legs.talking[due] = talking
            v = self.sc.voices
            means = np.where(talking, v.talk_mean_s, v.silence_mean_s)
            spurts = np.maximum(1, (self.talk_rng.exponential(means) / TICK_S).astype(np.int64))
            legs.next_toggle[due] = self.t + spurts
            legs.speaks[legs.pos[due]] = np.where(talking, legs.bin[due], SILENCE)
        n = legs.n
        if n:  # every live leg's frame, read by the mixer from the tone table (never copied per leg)
            self.engine.tick(legs.dense_mixer[:n], self.table, rows=legs.speaks[:n])
        else:
            self.engine.tick()
        if n:
            self.checker.check(self.t)
        self.t += 1

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
        if self.sc.chats.arrival_per_min > 0:  # chats have no audio: simulated on their own event queue
            from .chat_sim import ChatSimulation
            r.chats = ChatSimulation(self.sc.chats, self.sc.duration_s, self.sc.seed).run().to_dict()
        log.info("simulator.finished", ticks=r.ticks, calls_started=r.calls_started,
                 routing_checks=r.routing_checks, routing_violations=r.routing_violations)
        return r

    def _freeze_heap(self) -> None:
        """Move the set-up's objects out of the collector's reach for the run (undone by :meth:`run`).

        At 10,000 calls a full collection scans millions of set-up objects that never become garbage
        (hundreds of ms each time); frozen, the collector only scans what the run itself creates.
        """
        if self._froze_heap or gc.get_freeze_count():
            return  # frozen already (by us, or by whoever runs us)
        gc.collect()
        gc.freeze()
        self._froze_heap = True

    def run_virtual(self, progress: Callable[[int], object] | None = None, chunk: int = 25) -> Report:
        self.prepare()
        self._freeze_heap()
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
        # the simulator's own leg and call tables too: doubling them inside a tick costs tens of ms
        self.legs.grow(4 * self.sc.calls + 64)
        self.call_table.grow(2 * self.sc.calls + 16)
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
        n = self.legs.n
        if n:
            self.engine.push_many(self.legs.dense_mixer[:n], np.zeros((n, self.table.shape[1]), np.int16))
            self.engine.tick()
            lis = self.legs.dense_mixer[: min(n, self.sc.verification.max_listeners)].tolist()
            self.checker.meter.levels(self.engine.outputs(lis))  # first FFT of this size plans it
        self._freeze_heap()  # shorter collector pauses

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
            if self._froze_heap:  # the run's objects can be collected again once it is over
                gc.unfreeze()
                self._froze_heap = False


def default_control_factory() -> Callable[[MixerEngine], CallControl]:
    """The real signaling core when it is available, else the direct mixer control."""
    try:
        from .signaling_control import SignalingControl
    except ImportError:  # pragma: no cover - only before the signaling package exists
        log.warning("simulator.no_signaling_core", fallback="direct")
        return DirectControl
    return SignalingControl
