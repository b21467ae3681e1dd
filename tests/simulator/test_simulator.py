"""The in-process simulator: determinism, a checker that catches broken routing, the report's fields."""

import json

import numpy as np
import pytest
from bargein.mixer import MixerEngine, Role, SupervisorMode
from bargein.mixer import engine as mixer_engine
from bargein.simulator.cli import main
from bargein.simulator.report import TIMING_FIELDS
from bargein.simulator.sim import Simulation

REQUIRED = {
    "calls_started", "calls_completed", "peak_concurrent_calls", "monitor_sessions", "barge_toggles",
    "coach_toggles", "routing_checks", "routing_violations", "ticks", "deadline_misses", "tick_ms",
    "frames_missing", "frames_dropped",
}


def test_busy_run_exercises_everything_and_passes(busy):
    r = Simulation(busy()).run()
    assert r.routing_violations == 0, r.violations[:5]
    assert r.ticks == 1000 and r.checked_ticks == 1000
    assert r.calls_completed > 5 and r.calls_started > r.calls_completed
    assert r.monitor_sessions > 10 and r.barge_toggles > 3 and r.coach_toggles > 3 and r.monitor_toggles > 0
    assert r.party_mutes > 0 and r.holds > 0 and r.third_parties > 0 and r.supervisor_leaves > 0
    assert r.supervision_ended_by_call_end > 0
    assert r.routing_checks > 20_000
    assert r.frames_missing == 0 and r.frames_dropped == 0


def test_same_seed_same_report_other_seed_differs(busy):
    a = Simulation(busy(seed=11)).run().deterministic()
    b = Simulation(busy(seed=11)).run().deterministic()
    c = Simulation(busy(seed=12)).run().deterministic()
    assert a == b
    assert a != c
    assert not TIMING_FIELDS & a.keys()


def _wrong_route(real_route):
    """A routing bug: a monitoring supervisor is heard by the customer (the known 'heard by accident' pain)."""

    def route(legs):
        g = real_route(legs)
        for si, s in enumerate(legs):
            if s.role is Role.SUPERVISOR and s.mode is SupervisorMode.MONITOR:
                for li, listener in enumerate(legs):
                    if listener.role is Role.CUSTOMER:
                        g[li, si] = 1.0
        return g

    return route


def test_broken_routing_table_is_caught(busy, monkeypatch):
    monkeypatch.setattr(mixer_engine, "route", _wrong_route(mixer_engine.route))
    r = Simulation(busy()).run()
    assert r.routing_violations > 0
    assert r.violations, "violations are listed"
    v = r.violations[0]
    assert {"tick", "call", "listener", "speaker", "expected", "measured_db"} <= v.keys()
    assert all("(customer)" in x["listener"] and "monitor)" in x["speaker"] and x["expected"] == "silent"
               for x in r.violations)


class _OneWrongGain(MixerEngine):
    """Test-only fault: in one call, the agent stops hearing the customer (gain 0 instead of 1)."""

    target = None

    def tick(self, *given, **rows):  # given: the tick's input (legs, frames, rows), as the simulator hands it
        if self.target is None and self.call_count:
            self.target = self.calls()[0]
        if self.target in self._calls:
            c = self._calls[self.target]
            roles = [r.role for r in c.routing]
            g = self._pools[len(c.legs)].gains[c.row]
            g[roles.index(Role.AGENT), roles.index(Role.CUSTOMER)] = 0.0
        super().tick(*given, **rows)


def test_one_wrong_gain_in_one_call_is_caught_and_named(busy):
    sc = busy(handle_time={"mean_s": 100.0, "min_s": 50.0})
    engine = _OneWrongGain(sc.rate, sc.limits, buffer_frames=sc.buffer_frames)
    sim = Simulation(sc, engine=engine)
    r = sim.run()
    assert r.routing_violations > 0
    calls = {v["call"] for v in r.violations}
    assert len(calls) == 1, calls  # exactly the broken call is named
    assert all("(agent" in v["listener"] and "(customer" in v["speaker"] and v["expected"] == "hear"
               for v in r.violations)
    # only ticks where the customer was talking, not muted/held, can show it
    assert all("talking" in v["speaker_state"] for v in r.violations)


def test_cross_call_leak_is_caught(busy):
    class Leaky(MixerEngine):
        def tick(self, *given, **rows):
            super().tick(*given, **rows)
            pool = self._pools.get(2)
            if pool is not None and pool.n >= 2:  # call in row 1 hears call in row 0
                pool.out[1, 0] = np.clip(pool.out[1, 0].astype(np.int32) + pool.out[0, 1], -32768, 32767)

    sc = busy()
    r = Simulation(sc, engine=Leaky(sc.rate, sc.limits, buffer_frames=sc.buffer_frames)).run()
    assert r.routing_violations > 0


def test_cli_json_report_and_exit_status(tmp_path, busy, monkeypatch):
    out = tmp_path / "report.json"
    rc = main(["--calls", "6", "--duration", "4", "--seed", "3", "--rate", "8000", "--json", str(out), "--quiet"])
    assert rc == 0
    data = json.loads(out.read_text())
    assert REQUIRED <= data.keys()
    assert set(data["tick_ms"]) == {"p50", "p99", "max"}
    assert data["ticks"] == 200 and data["routing_violations"] == 0 and data["routing_checks"] > 0
    monkeypatch.setattr(mixer_engine, "route", _wrong_route(mixer_engine.route))
    scenario = tmp_path / "busy.json"
    scenario.write_text(busy().model_dump_json())
    assert main(["--scenario", str(scenario), "--quiet"]) == 1


@pytest.mark.parametrize("control", ["signaling", "direct"])
def test_both_controls_pass(busy, control):
    from bargein.simulator.control import DirectControl
    from bargein.simulator.sim import default_control_factory

    factory = DirectControl if control == "direct" else default_control_factory()
    r = Simulation(busy(duration_s=8), control=factory).run()
    assert r.routing_violations == 0, r.violations[:3]
    assert r.monitor_sessions > 0


def test_realtime_clock_short_run(busy):
    r = Simulation(busy(clock="realtime", duration_s=1.0, calls=4)).run()
    assert r.ticks + r.ticks_skipped == 50
    assert r.routing_violations == 0


def test_signaling_path_scales_past_the_servers_connection_limit():
    from bargein.simulator.scenario import Scenario

    r = Simulation(Scenario(calls=1100, duration_s=0.4, seed=3, rate=8000)).run()
    assert r.control == "signaling"
    assert r.peak_concurrent_calls >= 1100 and r.routing_violations == 0


def test_the_heap_is_frozen_only_during_the_run(busy):
    import gc

    seen = []

    class Probe(MixerEngine):
        def tick(self, *given, **rows):
            if not seen:
                seen.append(gc.get_freeze_count())
            super().tick(*given, **rows)

    sc = busy(duration_s=1)
    assert gc.get_freeze_count() == 0
    Simulation(sc, engine=Probe(sc.rate, sc.limits, buffer_frames=sc.buffer_frames)).run()
    assert seen[0] > 0  # the set-up's objects were out of the collector's reach while ticking
    assert gc.get_freeze_count() == 0  # and are collectable again afterwards
