"""Small, busy scenarios: few calls, many supervisor actions, 8 kHz, so a run takes well under a second."""

from collections.abc import Callable

import pytest
from bargein.simulator.scenario import Scenario


def _busy(**kw) -> Scenario:
    base = dict(
        calls=12, duration_s=20, seed=7, rate=8000, supervisors=6,
        handle_time={"mean_s": 12.0, "min_s": 2.0},
        supervision={"idle_mean_s": 0.5, "action_interval_s": 0.6, "leave_weight": 0.3},
        parties={"mute_per_min": 6, "hold_per_min": 4, "third_party_per_min": 4, "third_party_mean_s": 3},
        verification={"every_ticks": 1},
    )
    base.update(kw)
    return Scenario.model_validate(base)


@pytest.fixture
def busy() -> Callable[..., Scenario]:
    """Factory: a busy scenario, with keyword overrides."""
    return _busy
