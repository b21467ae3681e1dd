"""MixerEngine.gather and output_addresses: the send plan's reusable outputs() stays right while calls come, go,
move pools and grow."""

import ctypes

import numpy as np
import pytest
from bargein.mixer import LegRouting, MixerEngine, Role, SupervisorMode
from hypothesis import given, settings
from hypothesis import strategies as st

RATE, N = 16000, 320
ROLES = (Role.CUSTOMER, Role.AGENT)


def at_addresses(addresses: np.ndarray) -> np.ndarray:
    """The mixes where :meth:`MixerEngine.output_addresses` says they are (read as C reads them)."""
    return np.stack([np.ctypeslib.as_array((ctypes.c_int16 * N).from_address(int(a))) for a in addresses])


def tick_with_distinct_inputs(engine: MixerEngine, legs: list[int], salt: int) -> None:
    """Every leg speaks its own constant (so every mix differs), then one tick."""
    if legs:
        frames = np.stack([np.full(N, 7 * leg + salt, np.int16) for leg in legs])
        engine.push_many(legs, frames)
    engine.tick()


@pytest.mark.parametrize("kernel", ["numpy", "c"])
def test_a_gather_follows_its_legs_when_another_call_leaves_and_its_row_moves(kernel: str) -> None:
    engine = MixerEngine(rate=RATE, kernel=kernel, limiter="hard")
    first = [engine.add_leg("a", LegRouting(Role.CUSTOMER)), engine.add_leg("a", LegRouting(Role.AGENT))]
    kept = [engine.add_leg("b", LegRouting(Role.CUSTOMER)), engine.add_leg("b", LegRouting(Role.AGENT))]
    g = engine.output_gather(kept)
    tick_with_distinct_inputs(engine, first + kept, 1)
    assert np.array_equal(engine.gather(g), engine.outputs(kept))
    assert np.array_equal(at_addresses(engine.output_addresses(g)), engine.outputs(kept))
    engine.remove_call("a")  # call b's row is swapped into a's place: the cached rows are stale
    tick_with_distinct_inputs(engine, kept, 2)
    assert np.array_equal(engine.gather(g), engine.outputs(kept))
    assert np.array_equal(at_addresses(engine.output_addresses(g)), engine.outputs(kept))
    assert engine.gather(g)[0, 0] == 7 * kept[1] + 2  # the customer hears the agent


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "remove", "tick", "join", "leave"]), st.integers(0, 5),
                          st.integers(0, 2)), min_size=1, max_size=40))
def test_a_gather_always_equals_outputs(ops: list[tuple[str, int, int]]) -> None:
    """Other calls come and go (rows swap), and a supervisor joins and leaves the watched call (it changes pool)."""
    engine = MixerEngine(rate=RATE, kernel="c", limiter="hard")
    legs: dict[int, int] = {}  # leg -> call number
    watched = [engine.add_leg("w", LegRouting(Role.CUSTOMER)), engine.add_leg("w", LegRouting(Role.AGENT))]
    g = engine.output_gather(watched)
    supervisor: int | None = None
    for salt, (op, call, role) in enumerate(ops):
        if op == "join" and supervisor is None:
            supervisor = engine.add_leg("w", LegRouting(Role.SUPERVISOR, SupervisorMode.BARGE))
        elif op == "leave" and supervisor is not None:
            engine.remove_leg(supervisor)
            supervisor = None
        elif op == "add" and sum(c == call for c in legs.values()) < 4:
            legs[engine.add_leg(f"c{call}", LegRouting(ROLES[role % 2]))] = call
        elif op == "remove" and legs:
            leg = sorted(legs)[call % len(legs)]
            engine.remove_leg(leg)
            del legs[leg]
        tick_with_distinct_inputs(engine, watched + sorted(legs) + ([supervisor] if supervisor is not None else []),
                                  salt)
        assert np.array_equal(engine.gather(g), engine.outputs(watched))
        assert np.array_equal(at_addresses(engine.output_addresses(g)), engine.outputs(watched))
