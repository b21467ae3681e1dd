"""Join/leave/mode switch between ticks, missing frames, overflow, growth, and clear errors."""

from dataclasses import replace

import numpy as np
import pytest
from bargein.mixer import (
    CallLimits,
    FrameError,
    LegRouting,
    LimitError,
    MixerEngine,
    Role,
    SupervisorMode,
    UnknownLegError,
)
from bargein.mixer.tones import level_dbfs, tone

SUP = Role.SUPERVISOR
RATE, N = 16000, 320


def frame(value: int) -> np.ndarray:
    return np.full(N, value, np.int16)


@pytest.fixture(params=["numpy", "c"])
def engine(request: pytest.FixtureRequest) -> MixerEngine:
    return MixerEngine(rate=RATE, kernel=request.param, limiter="hard")


def test_missing_frame_is_silence_and_counted(engine: MixerEngine) -> None:
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    c = engine.add_leg(1, LegRouting(Role.CUSTOMER))
    engine.push(a, frame(100))
    engine.tick()  # customer sent nothing
    assert np.all(engine.output(a) == 0)
    assert np.all(engine.output(c) == 100)
    assert engine.leg_counters(c) == (1, 0)
    engine.tick()  # nobody sent anything: the tick still completes
    assert engine.counters.frames_missing == 3
    assert np.all(engine.output(c) == 0)


def test_overflow_drops_oldest_and_counts(engine: MixerEngine) -> None:
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    c = engine.add_leg(1, LegRouting(Role.CUSTOMER))
    for v in range(1, engine.depth + 3):  # two more than fit
        engine.push(a, frame(v))
    assert engine.buffered(a) == engine.depth
    assert engine.leg_counters(a) == (0, 2)
    engine.tick()
    assert np.all(engine.output(c) == 3)  # frames 1 and 2 were dropped
    assert engine.counters.frames_dropped == 2


def test_frames_are_consumed_in_order(engine: MixerEngine) -> None:
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    c = engine.add_leg(1, LegRouting(Role.CUSTOMER))
    for v in (7, 8, 9):
        engine.push(a, frame(v))
    got = []
    for _ in range(4):
        engine.tick()
        got.append(int(engine.output(c)[0]))
    assert got == [7, 8, 9, 0]


def test_join_and_leave_between_ticks_keep_buffers_and_other_calls(engine: MixerEngine) -> None:
    other_a = engine.add_leg("other", LegRouting(Role.AGENT))
    other_c = engine.add_leg("other", LegRouting(Role.CUSTOMER))
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    c = engine.add_leg(1, LegRouting(Role.CUSTOMER))
    engine.push(a, frame(10))
    engine.push(a, frame(11))
    engine.push(other_a, frame(5))
    engine.tick()
    assert engine.output(c)[0] == 10 and engine.output(other_c)[0] == 5
    s = engine.add_leg(1, LegRouting(SUP, SupervisorMode.MONITOR))  # call moves to the 3-leg pool
    engine.push(c, frame(20))
    engine.tick()
    assert engine.output(c)[0] == 11  # agent's second frame survived the move
    assert engine.output(s)[0] == 31
    engine.remove_leg(a)
    engine.push(c, frame(1))
    engine.tick()
    assert engine.output(s)[0] == 1
    assert engine.legs_of(1) == [c, s]
    engine.remove_call(1)
    assert engine.call_count == 1
    with pytest.raises(UnknownLegError, match="unknown leg"):
        engine.output(c)


def test_swap_remove_keeps_the_moved_call_intact(engine: MixerEngine) -> None:
    legs = {k: (engine.add_leg(k, LegRouting(Role.AGENT)), engine.add_leg(k, LegRouting(Role.CUSTOMER))) for k in range(5)}
    engine.remove_call(1)  # call 4 moves into call 1's row
    for k, (a, _) in legs.items():
        if k != 1:
            engine.push(a, frame(100 + k))
    engine.tick()
    for k, (_, c) in legs.items():
        if k != 1:
            assert engine.output(c)[0] == 100 + k


def test_capacity_grows_without_losing_calls(engine: MixerEngine) -> None:
    legs = [(engine.add_leg(k, LegRouting(Role.AGENT)), engine.add_leg(k, LegRouting(Role.CUSTOMER))) for k in range(300)]
    engine.push_many([a for a, _ in legs], np.stack([frame(k) for k in range(300)]))
    engine.tick()
    np.testing.assert_array_equal(engine.outputs([c for _, c in legs])[:, 0], np.arange(300))


def test_mode_switch_between_ticks(engine: MixerEngine) -> None:
    c = engine.add_leg(1, LegRouting(Role.CUSTOMER))
    s = engine.add_leg(1, LegRouting(SUP, SupervisorMode.MONITOR))
    engine.push(s, frame(50))
    engine.tick()
    assert engine.output(c)[0] == 0
    engine.set_routing(s, replace(engine.routing_of(s), mode=SupervisorMode.BARGE))
    engine.push(s, frame(50))
    engine.tick()
    assert engine.output(c)[0] == 50
    engine.set_routing(c, replace(engine.routing_of(c), muted=True))
    engine.push(c, frame(9))
    engine.tick()
    assert engine.output(s)[0] == 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(N, np.float32), "dtype is float32: expected int16"),
        (np.zeros(N + 1, np.int16), f"321 samples: expected {N}"),
        (np.zeros((2, N), np.int16), "expected mono"),
        ([0] * N, "numpy array"),
    ],
)
def test_bad_frames_are_refused_with_what_was_expected(engine: MixerEngine, bad: object, message: str) -> None:
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    with pytest.raises(FrameError, match=message):
        engine.push(a, bad)  # type: ignore[arg-type]


def test_wrong_rate_is_refused(engine: MixerEngine) -> None:
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    with pytest.raises(FrameError, match="48000 Hz: expected 16000 Hz"):
        engine.push(a, frame(0), sample_rate=48000)


def test_unsupported_mixer_rate() -> None:
    with pytest.raises(FrameError, match="unsupported mixer rate 44100"):
        MixerEngine(rate=44100)


def test_limits_enforced_with_clear_errors() -> None:
    engine = MixerEngine(rate=RATE, limits=CallLimits(max_parties=2, max_supervisors=2, max_barging=1))
    engine.add_leg(1, LegRouting(Role.AGENT))
    engine.add_leg(1, LegRouting(Role.CUSTOMER))
    with pytest.raises(LimitError, match="at most 2 parties"):
        engine.add_leg(1, LegRouting(Role.PARTY))
    s1 = engine.add_leg(1, LegRouting(SUP, SupervisorMode.BARGE))
    s2 = engine.add_leg(1, LegRouting(SUP, SupervisorMode.MONITOR))
    with pytest.raises(LimitError, match="at most 1 supervisor"):
        engine.set_routing(s2, replace(engine.routing_of(s2), mode=SupervisorMode.BARGE))
    assert engine.routing_of(s2).mode is SupervisorMode.MONITOR  # refused change left no trace
    with pytest.raises(LimitError, match="at most 2 supervisors"):
        engine.add_leg(1, LegRouting(SUP, SupervisorMode.MONITOR))
    engine.set_routing(s1, replace(engine.routing_of(s1), mode=SupervisorMode.MONITOR))
    engine.set_routing(s2, replace(engine.routing_of(s2), mode=SupervisorMode.BARGE))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [(dict(max_parties=1), "max_parties"), (dict(max_barging=3, max_supervisors=2), "max_barging"),
     (dict(max_supervisors=-1), "max_supervisors"), (dict(bogus=1), "bogus")],
)
def test_bad_limits_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CallLimits(**kwargs)


def test_default_limits_match_product() -> None:
    limits = CallLimits()
    assert (limits.max_parties, limits.max_supervisors, limits.max_barging) == (6, 2, 1)


def test_leaving_supervisor_does_not_leave_agent_muted(engine: MixerEngine) -> None:
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    c = engine.add_leg(1, LegRouting(Role.CUSTOMER))
    s = engine.add_leg(1, LegRouting(SUP, SupervisorMode.BARGE))
    engine.remove_leg(s)
    engine.push(a, tone(750, RATE, N))
    engine.tick()
    assert level_dbfs(engine.output(c), 750, RATE) > -20


def test_threaded_c_kernel_equals_single_thread_and_numpy() -> None:
    rng = np.random.default_rng(3)
    outs = []
    for kernel, threads in (("numpy", 1), ("c", 1), ("c", 2)):
        engine = MixerEngine(rate=RATE, kernel=kernel, threads=threads)
        roles = [LegRouting(Role.CUSTOMER), LegRouting(Role.AGENT), LegRouting(SUP, SupervisorMode.BARGE)]
        legs = [engine.add_leg(c, r) for c in range(500) for r in roles]
        engine.push_many(legs, rng.integers(-32768, 32767, (len(legs), N), dtype=np.int16))
        rng = np.random.default_rng(3)
        engine.tick()
        outs.append(engine.outputs(legs))
    np.testing.assert_array_equal(outs[1], outs[2])
    assert np.abs(outs[0].astype(np.int32) - outs[1]).max() <= 1  # soft clipper: tanh in C vs numpy


@pytest.mark.parametrize(("kernel", "threads"), [("numpy", 1), ("c", 1), ("c", 2)])
def test_tick_with_input_equals_push_many_then_tick(kernel: str, threads: int) -> None:
    """tick(legs, frames) mixes, records and counts exactly as push_many then tick, with some legs holding
    queued frames (those go behind them), one leg given two frames, and a recorded call in every pool."""
    rng = np.random.default_rng(5)
    roles = [LegRouting(Role.CUSTOMER), LegRouting(Role.AGENT), LegRouting(SUP, SupervisorMode.BARGE)]
    inputs = [rng.integers(-20000, 20000, (1701, N), dtype=np.int16) for _ in range(3)]
    results = []
    for handed in (False, True):
        engine = MixerEngine(rate=RATE, kernel=kernel, threads=threads, buffer_frames=2)
        legs = [engine.add_leg(c, r) for c in range(500) for r in roles]
        legs += [engine.add_leg(500 + c, roles[c % 2]) for c in range(200)]  # a pool of 2-leg calls too
        for call in (0, 250, 499, 501):
            engine.set_recording(call, call)
        early = legs[::7]
        engine.push_many(early, inputs[0][: len(early)])  # queued before: the handed frames go behind them
        got = []
        for t in (1, 2):
            to = [*legs, legs[3]]  # leg 3 twice: its second frame stays queued for the next tick
            frames = inputs[t][: len(to)].copy()
            if handed:
                engine.tick(to, frames)
            else:
                engine.push_many(to, frames)
                engine.tick()
            frames[:] = 0  # a frame lent to the tick is never read after it
            got.append((engine.outputs(legs), *engine.recording_output()))
        engine.tick()
        got.append((engine.outputs(legs), *engine.recording_output()))
        results.append((got, engine.counters))
    (a, ca), (b, cb) = results
    assert ca == cb
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("kernel", ["numpy", "c"])
def test_tick_with_rows_of_a_frame_table(kernel: str) -> None:
    """tick(legs, table, rows=...) gives legs[i] the frame table[rows[i]]; bad rows are refused before anything."""
    engine = MixerEngine(rate=RATE, kernel=kernel, limiter="hard")
    legs = [engine.add_leg(c, LegRouting(r)) for c in range(3) for r in (Role.CUSTOMER, Role.AGENT)]
    table = np.stack([frame(10), frame(20), frame(30)])
    engine.tick(legs, table, rows=[0, 1, 2, 2, 1, 0])
    assert [int(v) for v in engine.outputs(legs)[:, 0]] == [20, 10, 30, 30, 10, 20]  # each hears the other
    for rows, match in (([0, 1, 2, 3, 0, 0], "rows must index frames"), ([0, 1], "rows shape")):
        with pytest.raises(FrameError, match=match):
            engine.tick(legs, table, rows=rows)
    with pytest.raises(TypeError):
        engine.tick(rows=[0])
    engine.tick()
    assert engine.counters.frames_pushed == 6 and engine.counters.frames_missing == 6  # refused ticks queued nothing


def test_threads_need_the_c_kernel() -> None:
    with pytest.raises(ValueError, match="threads > 1 needs the C kernel"):
        MixerEngine(kernel="numpy", threads=2)


def test_two_monitoring_supervisors_share_one_mix(engine: MixerEngine) -> None:
    c = engine.add_leg(1, LegRouting(Role.CUSTOMER))
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    s1 = engine.add_leg(1, LegRouting(SUP, SupervisorMode.MONITOR))
    s2 = engine.add_leg(1, LegRouting(SUP, SupervisorMode.MONITOR))
    assert sorted(map(sorted, engine.shared_mix_groups(1))) == [[c], [a], [s1, s2]]
    engine.push(c, frame(3))
    engine.push(a, frame(4))
    engine.tick()
    np.testing.assert_array_equal(engine.output(s1), engine.output(s2))
    engine.set_routing(s1, replace(engine.routing_of(s1), mode=SupervisorMode.BARGE))  # s2 hears s1, s1 not itself
    assert sorted(map(sorted, engine.shared_mix_groups(1))) == [[c], [a], [s1], [s2]]


def test_set_routing_keeps_the_role(engine: MixerEngine) -> None:
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    engine.add_leg(1, LegRouting(Role.CUSTOMER))
    with pytest.raises(ValueError, match=r"leg 0 has role agent: a leg's role cannot change \(to customer\)"):
        engine.set_routing(a, LegRouting(Role.CUSTOMER))
    assert engine.routing_of(a) == LegRouting(Role.AGENT)


def test_set_routing_applies_gain(engine: MixerEngine) -> None:
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    c = engine.add_leg(1, LegRouting(Role.CUSTOMER))
    engine.set_routing(a, LegRouting(Role.AGENT, gain=0.5))
    engine.push(a, frame(100))
    engine.tick()
    assert np.all(engine.output(c) == 50)


def test_leg_counters_follow_the_leg_when_its_call_changes_pool(engine: MixerEngine) -> None:
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    c = engine.add_leg(1, LegRouting(Role.CUSTOMER))
    engine.add_leg(2, LegRouting(Role.AGENT))  # another call in the same pool: rows move on leave
    engine.add_leg(2, LegRouting(Role.CUSTOMER))
    for v in range(engine.depth + 1):
        engine.push(a, frame(v))  # one dropped
    engine.tick()  # c missing once
    p = engine.add_leg(1, LegRouting(Role.PARTY))
    assert engine.leg_counters(a) == (0, 1) and engine.leg_counters(c) == (1, 0)
    assert engine.buffered(a) == engine.depth - 1
    engine.remove_leg(c)
    engine.remove_leg(p)
    assert engine.leg_counters(a) == (0, 1)
    assert engine.counters.frames_dropped == 1
    assert engine.counters.frames_missing == 1 + 2 + 0  # c once, call 2's legs once each; p joined after
    engine.tick()
    assert engine.counters.frames_missing == 3 + 2  # a had frames left; call 2's two legs missed again


@pytest.mark.parametrize("kernel", ["numpy", "c"])
def test_frame_size_is_a_constructor_parameter(kernel: str) -> None:
    engine = MixerEngine(rate=8000, kernel=kernel, frame_samples=40)
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    c = engine.add_leg(1, LegRouting(Role.CUSTOMER))
    with pytest.raises(FrameError, match="160 samples: expected 40$"):
        engine.push(a, np.zeros(160, np.int16))
    engine.push(a, np.arange(40, dtype=np.int16))
    engine.tick()
    np.testing.assert_array_equal(engine.output(c), np.arange(40))
    with pytest.raises(ValueError, match="frame_samples must be between 1 and 4096"):
        MixerEngine(rate=8000, frame_samples=5000)


@pytest.mark.skipif(MixerEngine(rate=RATE).kernel != "c", reason="the C kernel was not built")
def test_per_thread_tick_timing_only_when_asked() -> None:
    """A one-thread engine (a media worker's) skips the clock and rusage calls behind ``last_split``; a benchmark
    that asks for them gets them."""
    engine = MixerEngine(rate=RATE, kernel="c")
    leg = engine.add_leg("c1", LegRouting(Role.CUSTOMER))
    engine.add_leg("c1", LegRouting(Role.AGENT))
    engine.push(leg, frame(100))
    engine.tick()
    assert not engine.share_timing and engine.last_split == ()
    engine.share_timing = True
    engine.push(leg, frame(100))
    engine.tick()
    (mine,) = engine.last_split
    assert mine.chunks == 1 and mine.cpu_ms >= 0
    assert MixerEngine(rate=RATE, kernel="c", threads=2).share_timing
