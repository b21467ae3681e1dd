"""The routing table of docs/behaviour.md, row by row, written out independently of mixer.routing."""

import itertools

import numpy as np
import pytest
from bargein.mixer import LegRouting, Role, SupervisorMode, route
from bargein.mixer.routing import hears

C, A, P = Role.CUSTOMER, Role.AGENT, Role.PARTY
SUP = Role.SUPERVISOR
MON, BARGE, COACH = SupervisorMode.MONITOR, SupervisorMode.BARGE, SupervisorMode.COACH

# columns: customer, agent, other party, sup. monitor, sup. barge, sup. coach
SPEAKERS = ["customer", "agent", "party", "monitor", "barge", "coach"]
TABLE = {
    "customer": [None, 1, 1, 0, 1, 0],
    "agent": [1, None, 1, 0, 1, 1],
    "party": [1, 1, None, 0, 1, 0],
    "supervisor": [1, 1, 1, 0, 1, 1],
}


def leg(name: str) -> LegRouting:
    return {
        "customer": LegRouting(C),
        "agent": LegRouting(A),
        "party": LegRouting(P),
        "monitor": LegRouting(SUP, MON),
        "barge": LegRouting(SUP, BARGE),
        "coach": LegRouting(SUP, COACH),
    }[name]


CELLS = [(lis, i) for lis, row in TABLE.items() for i, v in enumerate(row) if v is not None]  # None: self


@pytest.mark.parametrize(("listener", "speaker_index"), CELLS)
def test_table_cell(listener: str, speaker_index: int) -> None:
    expected = TABLE[listener][speaker_index]
    speaker = leg(SPEAKERS[speaker_index])
    for mode in (MON, BARGE, COACH) if listener == "supervisor" else (None,):
        lis = LegRouting(SUP, mode) if listener == "supervisor" else leg(listener)
        assert hears(lis, speaker) is bool(expected), (listener, mode, SPEAKERS[speaker_index])
        gains = route([lis, speaker])
        assert gains[0, 1] == float(expected)


def test_full_call_gain_matrix() -> None:
    legs = [leg(n) for n in ("customer", "agent", "party", "monitor")] + [LegRouting(SUP, BARGE)]
    g = route(legs)
    #            cust agent party mon barge   <- speakers
    expected = [[0, 1, 1, 0, 1],  # customer
                [1, 0, 1, 0, 1],  # agent
                [1, 1, 0, 0, 1],  # party
                [1, 1, 1, 0, 1],  # monitoring supervisor
                [1, 1, 1, 0, 0]]  # barging supervisor
    np.testing.assert_array_equal(g, np.array(expected, dtype=np.float32))


@pytest.mark.parametrize("names", list(itertools.permutations(["customer", "agent", "monitor", "coach"], 4)))
def test_mix_minus_diagonal_is_zero_in_any_order(names: tuple[str, ...]) -> None:
    g = route([leg(n) for n in names])
    assert np.all(np.diag(g) == 0)


def test_muted_party_heard_by_nobody_but_still_hears() -> None:
    legs = [LegRouting(C, muted=True), LegRouting(A), LegRouting(SUP, BARGE)]
    g = route(legs)
    assert np.all(g[:, 0] == 0)
    assert g[0, 1] == 1 and g[0, 2] == 1


def test_held_party_hears_nothing_and_is_heard_by_nobody_rest_continues() -> None:
    legs = [LegRouting(C, held=True), LegRouting(A), LegRouting(P), LegRouting(SUP, MON)]
    g = route(legs)
    assert np.all(g[0] == 0) and np.all(g[:, 0] == 0)
    assert g[1, 2] == 1 and g[2, 1] == 1 and g[3, 1] == 1 and g[3, 2] == 1


def test_coach_reaches_agent_only_never_customer_or_party() -> None:
    legs = [LegRouting(C), LegRouting(A), LegRouting(P), LegRouting(SUP, COACH), LegRouting(SUP, MON)]
    g = route(legs)
    assert g[1, 3] == 1  # agent hears the coach
    assert g[0, 3] == 0 and g[2, 3] == 0  # customer and other party do not
    assert g[4, 3] == 1  # another supervisor does


def test_speaker_gain_applies_where_heard() -> None:
    g = route([LegRouting(C, gain=0.5), LegRouting(A)])
    assert g[1, 0] == np.float32(0.5)


@pytest.mark.parametrize("bad", [dict(role=SUP), dict(role=A, mode=BARGE)])
def test_mode_is_for_supervisors_only(bad: dict) -> None:
    with pytest.raises(ValueError, match="mode"):
        LegRouting(**bad)
