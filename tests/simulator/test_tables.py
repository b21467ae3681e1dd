"""The leg and call tables: ids, the dense order of live legs and growth stay consistent under any churn."""

import numpy as np
from bargein.simulator.tables import NEVER, CallTable, LegTable, grown
from bargein.simulator.voices import SILENCE
from hypothesis import given, settings
from hypothesis import strategies as st


def _add(t: LegTable, k: int) -> int:
    return t.add(name=f"u{k}", call=k % 7, mixer_leg=1000 + k, role=k % 4, mode=k % 4, tone=k % 24,
                 talking=bool(k % 2), next_toggle=k, speaks=k)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 10**6)), max_size=200))
def test_leg_table_dense_order_matches_the_live_legs(ops):
    t = LegTable(cap=2)  # tiny, so growth happens many times
    live: dict[int, int] = {}  # sim leg -> k it was added with
    for k, (add, pick) in enumerate(ops):
        if add or not live:
            s = _add(t, k)
            assert s not in live
            live[s] = k
        else:
            s = sorted(live)[pick % len(live)]
            t.remove(s)
            del live[s]
    assert t.n == len(live) and t.cap >= t.n
    assert sorted(t.live.tolist()) == sorted(live)
    for i, s in enumerate(t.live.tolist()):
        k = live[s]
        assert t.pos[s] == i and t.active[s]
        assert t.dense_mixer[i] == t.mixer[s] == 1000 + k
        assert t.speaks[i] == k and t.names[s] == f"u{k}" and t.next_toggle[s] == k
    free = np.setdiff1d(np.arange(t.cap), t.live)
    assert (t.pos[free] == -1).all() and not t.active[free].any()
    assert (t.mixer[free] == -1).all() and (t.next_toggle[free] == NEVER).all() and (t.bin[free] == SILENCE).all()


def test_leg_ids_are_handed_out_lowest_first_and_reused():
    t = LegTable(cap=4)
    assert [_add(t, k) for k in range(3)] == [0, 1, 2]
    t.remove(1)
    assert _add(t, 9) == 1
    assert [_add(t, k) for k in range(3)] == [3, 4, 5]  # 4 and 5 after doubling
    assert t.cap == 8


def test_grown_keeps_rows_and_fills_the_new_ones():
    a = np.arange(6, dtype=np.int64).reshape(3, 2)
    g = grown(a, 5, -1)
    assert g.dtype == a.dtype and g.shape == (5, 2)
    assert (g[:3] == a).all() and (g[3:] == -1).all()


def test_call_table_slots_and_members():
    c = CallTable(max_legs=3, cap=1)
    a, b = c.open(), c.open()
    assert (a, b) == (0, 1) and c.cap == 2
    c.join(a, 10)
    c.join(a, 11)
    c.join(a, 12)
    c.leave(a, 11)
    c.join(a, 13)  # takes the freed column
    assert c.members[a].tolist() == [10, 13, 12]
    assert (c.members[b] == -1).all()
    c.close(a)
    assert c.open() == a
