"""Hypothesis: random joins, leaves, mode changes, pushes and ticks against a plain per-call model."""

from collections import deque
from dataclasses import replace

import numpy as np
from bargein.mixer import CallLimits, LegRouting, LimitError, MixerEngine, Role, SupervisorMode
from bargein.mixer.reference import mix_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

N = 80
DEPTH = 3
LIMITS = CallLimits(max_parties=4, max_supervisors=2, max_barging=1)

add = st.tuples(st.just("add"), st.integers(0, 4), st.sampled_from(list(Role)), st.sampled_from(list(SupervisorMode)))
tick = st.tuples(st.just("tick"))
op = st.one_of(
    add, add, add,
    tick, tick,
    st.tuples(st.just("remove"), st.integers(0, 50)),
    st.tuples(st.just("mode"), st.integers(0, 50), st.sampled_from(list(SupervisorMode))),
    st.tuples(st.just("mute"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("hold"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("push"), st.integers(0, 50), st.integers(-30000, 30000)),
    st.tuples(st.just("push_many"), st.integers(-30000, 30000)),
    st.tuples(st.just("push_many"), st.integers(-30000, 30000)),
    # tick(legs, frames): every leg's frame handed to the tick, one leg (index) given a second frame
    # (with rows: the frames given as a table, each leg's row of it named)
    st.tuples(st.just("tick_with"), st.integers(-30000, 30000), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("tick_with"), st.integers(-30000, 30000), st.integers(0, 50), st.booleans()),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=40, max_size=150), kernel=st.sampled_from(["numpy", "c"]))
def test_engine_matches_model(ops: list, kernel: str) -> None:
    # smaller frames keep examples fast; the engine never assumes 160
    engine = MixerEngine(rate=8000, limits=LIMITS, buffer_frames=DEPTH, limiter="hard", kernel=kernel, frame_samples=N)
    model: dict[int, list[list]] = {}  # call -> [[leg, routing, deque]]
    legs: list[int] = []
    dropped = 0

    def find(leg: int) -> tuple[int, list]:
        for call, entries in model.items():
            for e in entries:
                if e[0] == leg:
                    return call, e
        raise KeyError(leg)

    def pick(i: int) -> int | None:
        return legs[i % len(legs)] if legs else None

    def queue(leg: int, value: int) -> int:
        """The model's push; returns the frames it dropped."""
        _, e = find(leg)
        full = len(e[2]) == DEPTH
        if full:
            e[2].popleft()
        e[2].append(np.full(N, value, np.int16))
        return int(full)

    def check_tick() -> None:
        for _call, entries in model.items():
            frames = [e[2].popleft() if e[2] else None for e in entries]
            expected = mix_call([e[1] for e in entries], frames, "hard", N)
            got = engine.outputs([e[0] for e in entries])
            np.testing.assert_array_equal(got, expected)

    for o in ops:
        kind = o[0]
        if kind == "add":
            _, call, role, mode = o
            routing = LegRouting(role, mode if role is Role.SUPERVISOR else None)
            try:
                leg = engine.add_leg(call, routing)
            except LimitError:
                continue
            model.setdefault(call, []).append([leg, routing, deque()])
            legs.append(leg)
        elif kind == "remove" and (leg := pick(o[1])) is not None:
            engine.remove_leg(leg)
            call, e = find(leg)
            model[call].remove(e)
            if not model[call]:
                del model[call]
            legs.remove(leg)
        elif kind in ("mode", "mute", "hold") and (leg := pick(o[1])) is not None:
            call, e = find(leg)
            field = {"mode": "mode", "mute": "muted", "hold": "held"}[kind]
            if kind == "mode" and e[1].role is not Role.SUPERVISOR:
                continue
            try:
                new = replace(e[1], **{field: o[2]})
                engine.set_routing(leg, new)
                e[1] = new
            except LimitError:
                continue
        elif kind == "push" and (leg := pick(o[1])) is not None:
            engine.push_many([leg], np.full((1, N), o[2], np.int16))
            dropped += queue(leg, o[2])
        elif kind == "push_many" and legs:
            vals = np.arange(len(legs), dtype=np.int16) * 7 + np.int16(o[1] // 4)
            engine.push_many(legs, np.repeat(vals[:, None], N, axis=1))
            for leg, v in zip(legs, vals, strict=True):
                dropped += queue(leg, v)
        elif kind == "tick_with" and legs:
            to = [*legs, legs[o[2] % len(legs)]]
            vals = np.arange(len(to), dtype=np.int16) * 5 + np.int16(o[1] // 4)
            frames = np.repeat(vals[:, None], N, axis=1)
            if o[3]:  # the same frames as a table in reverse order, each leg naming its row
                frames = frames[::-1].copy()
                engine.tick(to, frames, rows=np.arange(len(to))[::-1])
            else:
                engine.tick(to, frames)
            for leg, v in zip(to, vals, strict=True):
                dropped += queue(leg, v)
            check_tick()
            frames[:] = 12345  # the engine kept copies of what it still holds, never the caller's rows
        elif kind == "tick":
            engine.tick()
            check_tick()
    assert engine.counters.frames_dropped == dropped
    assert sorted(engine._leg_call) == sorted(legs)
