"""The checker's own routing expectation against the product table, cell by cell, and its measurement."""

import itertools

import numpy as np
from bargein.mixer import LegRouting, Role, SupervisorMode
from bargein.mixer.routing import hears
from bargein.simulator.expected import (
    AGENT,
    BARGE,
    COACH,
    CUSTOMER,
    MONITOR,
    NO_MODE,
    PARTY,
    SUPERVISOR,
    should_hear,
)
from bargein.simulator.voices import POOL, POOL_HZ, ToneMeter, tone_table

# (listener, speaker) -> hears, transcribed from docs/behaviour.md's table for a few cells that matter most
CELLS = {
    ("customer", "monitor"): False, ("customer", "barge"): True, ("customer", "coach"): False,
    ("agent", "monitor"): False, ("agent", "barge"): True, ("agent", "coach"): True,
    ("party", "coach"): False, ("supervisor", "monitor"): False, ("supervisor", "coach"): True,
    ("supervisor", "customer"): True, ("customer", "agent"): True, ("party", "customer"): True,
}
CODES = {"customer": (CUSTOMER, NO_MODE), "agent": (AGENT, NO_MODE), "party": (PARTY, NO_MODE),
         "supervisor": (SUPERVISOR, MONITOR), "monitor": (SUPERVISOR, MONITOR), "barge": (SUPERVISOR, BARGE),
         "coach": (SUPERVISOR, COACH)}


def _hear(listener, speaker, *, muted=False, s_held=False, l_held=False, talking=True, same=False):
    lr, _ = CODES[listener]
    sr, sm = CODES[speaker]
    a = lambda v: np.array(v)  # noqa: E731
    return bool(should_hear(a(0), a(lr), a(l_held), a(0 if same else 1), a(sr), a(sm), a(muted), a(s_held),
                            a(talking)))


def test_table_cells():
    for (listener, speaker), want in CELLS.items():
        assert _hear(listener, speaker) is want, (listener, speaker)


def test_mute_hold_silence_and_self():
    assert not _hear("agent", "customer", muted=True)
    assert not _hear("agent", "customer", s_held=True)
    assert not _hear("customer", "agent", l_held=True)
    assert not _hear("agent", "customer", talking=False)
    assert not _hear("agent", "agent", same=True)
    assert _hear("party", "party")  # two different third parties


def test_agrees_with_the_mixer_routing_everywhere():
    """Cross-check (test only): the independent table and mixer.routing agree on every cell and flag."""
    roles = [("customer", Role.CUSTOMER, None), ("agent", Role.AGENT, None), ("party", Role.PARTY, None),
             ("monitor", Role.SUPERVISOR, SupervisorMode.MONITOR), ("barge", Role.SUPERVISOR, SupervisorMode.BARGE),
             ("coach", Role.SUPERVISOR, SupervisorMode.COACH)]
    for (ln, lr, lm), (sn, sr, sm), muted, sh, lh in itertools.product(roles, roles, *[(False, True)] * 3):
        listener = LegRouting(lr, lm, held=lh)
        speaker = LegRouting(sr, sm, muted=muted, held=sh)
        assert _hear("supervisor" if lr is Role.SUPERVISOR else ln, sn, muted=muted, s_held=sh, l_held=lh) \
            == hears(listener, speaker), (ln, sn, muted, sh, lh)


def test_meter_separates_every_pool_tone_at_every_rate():
    for rate in (8000, 16000, 48000):
        table = tone_table(rate, 0.05)
        meter = ToneMeter(rate)
        lv = meter.levels(table[:POOL]) / (0.05 * 32767)
        assert np.allclose(np.diag(lv), 1.0, atol=0.01)
        off = lv[~np.eye(POOL, dtype=bool)]
        assert off.max() < 0.005
        mix = table[3].astype(np.int32) + table[17]
        lv = meter.levels(mix[None, :]) / (0.05 * 32767)
        assert lv[0, 3] > 0.99 and lv[0, 17] > 0.99 and np.delete(lv[0], [3, 17]).max() < 0.005
    assert len(set(POOL_HZ.tolist())) == POOL and POOL_HZ.max() < 4000
