"""The recording tap of the batched tick: one stereo frame per recorded call, left = contact center's
side, right = caller's side, gains following the routing (never a monitoring or coaching supervisor)."""

import numpy as np
import pytest
from bargein.mixer import CallLimits, LegRouting, MixerEngine, Role, SupervisorMode
from bargein.mixer.routing import recording_gains
from bargein.mixer.tones import level_dbfs, tone
from hypothesis import given, settings
from hypothesis import strategies as st

RATE, N = 16000, 320
TONES = {"customer": 500.0, "agent": 750.0, "party": 1000.0, "supervisor": 1650.0}
ROLE = {"customer": Role.CUSTOMER, "agent": Role.AGENT, "party": Role.PARTY, "supervisor": Role.SUPERVISOR}


@pytest.fixture(params=["numpy", "c"])
def engine(request: pytest.FixtureRequest) -> MixerEngine:
    return MixerEngine(rate=RATE, kernel=request.param, limiter="hard")


def on_channels(engine: MixerEngine, legs: dict[str, int], rec_id: int, t: int) -> tuple[set[str], set[str]]:
    """Push every leg's tone, tick, and say whose tone is on the left and on the right."""
    engine.push_many(list(legs.values()), np.stack([tone(TONES[n], RATE, N, 0.2, start=t * N) for n in legs]))
    engine.tick()
    ids, frames = engine.recording_output()
    assert list(ids) == [rec_id]
    found = []
    for ch in (0, 1):
        found.append({n for n in legs if level_dbfs(frames[0, ch], TONES[n], RATE) > -30})
        silent = {n for n in legs if level_dbfs(frames[0, ch], TONES[n], RATE) < -80}
        assert found[-1] | silent == set(legs), "a tone is neither clearly present nor absent"
    return found[0], found[1]


def test_channels_follow_roles_and_supervisor_modes(engine: MixerEngine) -> None:
    legs = {n: engine.add_leg("call", LegRouting(ROLE[n], SupervisorMode.MONITOR if n == "supervisor" else None))
            for n in TONES}
    engine.set_recording("call", 7)
    t = 0
    assert on_channels(engine, legs, 7, t) == ({"agent"}, {"customer", "party"})  # monitor: not recorded
    for mode, left in [("barge", {"agent", "supervisor"}), ("coach", {"agent"}), ("monitor", {"agent"})]:
        engine.set_routing(legs["supervisor"], LegRouting(Role.SUPERVISOR, SupervisorMode(mode)))
        t += 1
        assert on_channels(engine, legs, 7, t) == (left, {"customer", "party"}), mode
    engine.set_routing(legs["customer"], LegRouting(Role.CUSTOMER, muted=True))  # nobody hears it: nor does the recording
    engine.set_routing(legs["agent"], LegRouting(Role.AGENT, held=True))
    assert on_channels(engine, legs, 7, t + 1) == (set(), {"party"})


def test_queue_setting_records_one_side_only(engine: MixerEngine) -> None:
    legs = {n: engine.add_leg("c", LegRouting(ROLE[n])) for n in ("customer", "agent")}
    engine.set_recording("c", 1, channels=(True, False))
    assert on_channels(engine, legs, 1, 0) == ({"agent"}, set())
    engine.set_recording("c", 1, channels=(False, True))
    assert on_channels(engine, legs, 1, 1) == (set(), {"customer"})


def test_tap_survives_pool_moves_and_stops(engine: MixerEngine) -> None:
    other = [engine.add_leg("other", LegRouting(Role.CUSTOMER)), engine.add_leg("other", LegRouting(Role.AGENT))]
    legs = {n: engine.add_leg("c", LegRouting(ROLE[n])) for n in ("customer", "agent")}
    engine.set_recording("c", 3)
    engine.remove_leg(other[0])  # swap-remove in the 2-leg pool moves "c" to another row
    legs["party"] = engine.add_leg("c", LegRouting(Role.PARTY))  # moves "c" to the 3-leg pool
    assert on_channels(engine, legs, 3, 0) == ({"agent"}, {"customer", "party"})
    engine.set_recording("c", None)
    engine.tick()
    assert engine.recording_output()[0].size == 0
    engine.set_recording("c", 4)
    engine.remove_call("c")
    engine.tick()
    assert engine.recording_output()[0].size == 0 and engine._recorded == 0


def test_missing_frames_record_as_silence(engine: MixerEngine) -> None:
    engine.add_leg("c", LegRouting(Role.CUSTOMER))
    engine.add_leg("c", LegRouting(Role.AGENT))
    engine.set_recording("c", 0)
    engine.tick()
    ids, frames = engine.recording_output()
    assert list(ids) == [0] and not frames.any()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(ROLE)), st.sampled_from(list(SupervisorMode)), st.booleans(),
                          st.booleans()), min_size=1, max_size=6),
       st.integers(0, 2**31), st.sampled_from(["numpy", "c"]), st.booleans())
def test_tap_equals_gains_times_inputs(spec: list, seed: int, kernel: str, handed: bool) -> None:
    engine = MixerEngine(rate=RATE, kernel=kernel, limiter="hard", limits=CallLimits(max_supervisors=6, max_barging=6))
    routing = [LegRouting(ROLE[r], m if r == "supervisor" else None, muted=mu, held=h) for r, m, mu, h in spec]
    legs = [engine.add_leg("c", r) for r in routing]
    engine.set_recording("c", 9)
    pcm = np.random.default_rng(seed).integers(-8000, 8000, (len(legs), N)).astype(np.int16)
    if handed:  # the tick given its input: the tap reads the caller's frames where they lie
        engine.tick(legs, pcm)
    else:
        engine.push_many(legs, pcm)
        engine.tick()
    want = np.clip(np.rint(recording_gains(routing) @ pcm.astype(np.float32)), -32768, 32767)
    assert np.array_equal(engine.recording_output()[1][0], want.astype(np.int16))
