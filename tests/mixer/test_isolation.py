"""1000 concurrent calls, a unique tone per leg: no listener gets energy from another call."""

import numpy as np
import pytest
from bargein.mixer import LegRouting, MixerEngine, Role, SupervisorMode
from bargein.mixer.tones import spectrum_dbfs

CALLS, LEGS = 1000, 3


@pytest.mark.parametrize("kernel", ["numpy", "c"])
def test_no_energy_leaks_between_1000_calls(kernel: str) -> None:
    rate, n, ticks = 48000, 960, 8  # 6.25 Hz bins up to 24 kHz: 3840 bins, 3000 legs on distinct bins
    window = n * ticks
    engine = MixerEngine(rate=rate, kernel=kernel, limiter="hard")
    roles = [LegRouting(Role.CUSTOMER), LegRouting(Role.AGENT), LegRouting(Role.SUPERVISOR, SupervisorMode.MONITOR)]
    legs = np.array([[engine.add_leg(c, roles[k]) for k in range(LEGS)] for c in range(CALLS)])
    # leg (c, k) sends bin 20 + 3c + k: unique per leg, exactly periodic in the window
    bins = 20 + 3 * np.arange(CALLS)[:, None] + np.arange(LEGS)[None, :]
    t = np.arange(window)
    amp = 2000  # 3 legs x 1000 calls never clip
    signals = np.round(amp * np.sin(2 * np.pi * bins[..., None] * t / window)).astype(np.int16)
    outs = np.empty((CALLS, LEGS, window), np.int16)
    flat_legs = legs.ravel().tolist()
    for tick in range(ticks):
        engine.push_many(flat_legs, signals[..., tick * n:(tick + 1) * n].reshape(-1, n))
        engine.tick()
        outs[..., tick * n:(tick + 1) * n] = engine.outputs(flat_legs).reshape(CALLS, LEGS, n)
    spec = spectrum_dbfs(outs.reshape(CALLS * LEGS, window))  # (legs, bins)
    heard_by = {0: [1], 1: [0], 2: [0, 1]}  # customer hears agent, agent customer, monitor both
    for k, speakers in heard_by.items():
        rows = spec[k::LEGS]
        own_call = bins[:, speakers]
        got = np.take_along_axis(rows, own_call, axis=1)
        assert got.min() > -30, "a listener lost a party of its own call"
        rows = rows.copy()
        np.put_along_axis(rows, own_call, -200.0, axis=1)
        worst = rows.max()
        assert worst < -80, f"listener role {k} picks up {worst:.1f} dBFS from elsewhere"
