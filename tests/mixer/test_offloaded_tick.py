"""The tick off the event loop: an offloaded clock keeps the loop serving, pushes made while a tick computes in
another thread neither wait nor get lost, and the tick split over threads equals one thread."""

import asyncio
import threading

import numpy as np
import pytest
from bargein.mixer import LegRouting, MixerEngine, RealtimeClock, Role, SupervisorMode, UnknownLegError
from bargein.mixer.reference import mix_call

N = 160
HANG = 20.0  # seconds: only a deadlock takes this long; it turns a hang into a failure


async def test_offloaded_clock_keeps_the_loop_serving_during_a_tick() -> None:
    loop_ran = threading.Event()
    seen: list[bool] = []

    def on_tick() -> None:  # finishes only if the loop can run while it waits
        seen.append(loop_ran.wait(HANG))
        loop_ran.clear()

    async def loop_work() -> None:
        while len(seen) < 3:
            loop_ran.set()
            await asyncio.sleep(0.001)

    clock = RealtimeClock(on_tick, offload=True)
    await asyncio.gather(clock.run(duration_s=0.06), loop_work())
    assert seen == [True, True, True]
    assert clock.stats.ticks == 3


class _GatedEngine(MixerEngine):
    """Test-only: the tick waits inside its lock until the test opens the gate (a tick 'computing')."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.inside = threading.Event()
        self.gate = threading.Event()
        self.gate_was_open: list[bool] = []

    def _tick_c(self) -> None:
        self.inside.set()
        self.gate_was_open.append(self.gate.wait(HANG))
        super()._tick_c()


def test_pushes_during_a_computing_tick_do_not_wait_and_keep_their_order() -> None:
    engine = _GatedEngine(rate=8000, kernel="c", limiter="hard")
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    c = engine.add_leg(1, LegRouting(Role.CUSTOMER))
    engine.push(a, np.full(N, 1, np.int16))
    ticking = threading.Thread(target=engine.tick)
    ticking.start()
    assert engine.inside.wait(HANG)
    engine.push(a, np.full(N, 2, np.int16))  # returns while the tick holds the engine
    engine.push_many([a, c], np.stack([np.full(N, 3, np.int16), np.full(N, 7, np.int16)]))
    with pytest.raises(UnknownLegError):
        engine.push(99, np.zeros(N, np.int16))  # still checked at once
    engine.gate.set()
    ticking.join()
    assert engine.gate_was_open == [True]  # opened by the test after the pushes returned, not timed out
    assert np.all(engine.output(c) == 1)  # the frame queued before the tick
    engine.tick()
    assert np.all(engine.output(c) == 2) and np.all(engine.output(a) == 7)
    engine.tick()
    assert np.all(engine.output(c) == 3)
    assert engine.counters.frames_pushed == 4


def test_a_pending_frame_of_a_leg_that_left_is_dropped() -> None:
    engine = _GatedEngine(rate=8000, kernel="c")
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    c = engine.add_leg(1, LegRouting(Role.CUSTOMER))
    ticking = threading.Thread(target=engine.tick)
    ticking.start()
    assert engine.inside.wait(HANG)
    engine.push(a, np.full(N, 5, np.int16))
    engine.gate.set()
    ticking.join()
    engine.remove_leg(a)
    engine.tick()  # the pending frame of the removed leg is skipped, not an error
    assert np.all(engine.output(c) == 0)


def mixed_widths(engine: MixerEngine, rng: np.random.Generator) -> list[int]:
    legs = []
    shapes = {2: [Role.CUSTOMER, Role.AGENT], 3: [Role.CUSTOMER, Role.AGENT, Role.SUPERVISOR],
              4: [Role.CUSTOMER, Role.AGENT, Role.PARTY, Role.SUPERVISOR]}
    for call in range(700):
        roles = shapes[2 + call % 3]
        for r in roles:
            mode = SupervisorMode.BARGE if r is Role.SUPERVISOR and call % 2 else SupervisorMode.MONITOR
            legs.append(engine.add_leg(call, LegRouting(r, mode if r is Role.SUPERVISOR else None)))
    return legs


@pytest.mark.parametrize("limiter", ["hard", "soft"])
def test_threaded_tick_over_several_pools_equals_one_thread(limiter: str) -> None:
    outs = []
    for threads in (1, 2, 3):
        rng = np.random.default_rng(11)
        engine = MixerEngine(rate=8000, kernel="c", limiter=limiter, threads=threads)
        legs = mixed_widths(engine, rng)
        for _ in range(3):
            present = [leg for leg in legs if rng.random() < 0.8]
            engine.push_many(present, rng.integers(-32768, 32767, (len(present), N), dtype=np.int16))
            engine.tick()
        outs.append(engine.outputs(legs))
        assert engine.counters.frames_missing > 0
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


@pytest.mark.parametrize("speakers", [1, 2, 3])
@pytest.mark.parametrize("peak", [25999, 26000, 26001, 32767, -32768])
def test_unit_gain_paths_hand_the_knee_to_the_soft_clipper(speakers: int, peak: int) -> None:
    """One, two and three speakers with unit gains take integer paths; a sample past the knee anywhere in the
    frame must give the soft-clipped result of the reference, and one just below it must stay exact."""
    routing = [LegRouting(Role.AGENT)] + [LegRouting(Role.CUSTOMER)] + [LegRouting(Role.PARTY)] * (speakers - 1)
    rng = np.random.default_rng(speakers)
    frames = [rng.integers(-3000, 3000, N, dtype=np.int16) for _ in routing]
    frames[1][N // 2] = peak  # the agent hears this one loud sample
    if speakers > 1:
        frames[2][N // 2] = 0
    expected = mix_call(routing, frames, "soft", N)
    for kernel in ("numpy", "c"):
        engine = MixerEngine(rate=8000, kernel=kernel, frame_samples=N)
        legs = [engine.add_leg(1, r) for r in routing]
        engine.push_many(legs, np.stack(frames))
        engine.tick()
        got = engine.outputs(legs)
        assert np.abs(got.astype(np.int32) - expected).max() <= 1, kernel  # tanh of C vs numpy
        if abs(peak) <= 26000:
            np.testing.assert_array_equal(got[0], expected[0])


def test_push_many_across_pools_with_an_unknown_leg_writes_nothing() -> None:
    engine = MixerEngine(rate=8000, kernel="c")
    a = engine.add_leg(1, LegRouting(Role.AGENT))
    b = engine.add_leg(2, LegRouting(Role.AGENT))
    engine.add_leg(2, LegRouting(Role.CUSTOMER))
    with pytest.raises(UnknownLegError, match="unknown leg 42"):
        engine.push_many([a, b, 42], np.ones((3, N), np.int16))
    assert engine.buffered(a) == 0 and engine.buffered(b) == 0
    engine.push_many([b, a], np.ones((2, N), np.int16))
    assert engine.buffered(a) == 1 and engine.buffered(b) == 1
