"""The capacity benchmark's summary row: max_clean_legs (the issue's contract) and the fixed / per-leg split."""

from __future__ import annotations

import pytest

from benchmarks.webrtc_capacity import fit_line, summary


def _row(legs: int, cpu: float, misses: int = 0, concealed: float = 0.0) -> dict[str, object]:
    return {"workers": 1, "legs": legs, "server_cpu_pct": cpu, "deadline_misses": misses, "concealed_pct": concealed}


def test_a_line_through_exact_points_gives_their_intercept_and_slope() -> None:
    a, b = fit_line([(8, 2.0 + 8 * 1.25), (16, 2.0 + 16 * 1.25), (32, 2.0 + 32 * 1.25)])  # type: ignore[misc]
    assert a == pytest.approx(2.0) and b == pytest.approx(1.25)
    assert fit_line([(8, 10.0)]) is None and fit_line([(8, 10.0), (8, 12.0)]) is None


def test_the_summary_leaves_overloaded_steps_out_of_the_line_and_keeps_the_contract() -> None:
    rows = [_row(16, 26.0), _row(32, 46.0, misses=2), _row(48, 66.0), _row(80, 90.0, misses=200, concealed=4.0)]
    s = summary(1, rows)
    assert s["workers"] == 1 and s["max_clean_legs"] == 48  # 0 misses and < 1 % concealed
    assert s["fixed_cpu_pct"] == pytest.approx(6.0) and s["cpu_pct_per_added_leg"] == pytest.approx(1.25)
    assert summary(2, [_row(8, 20.0, misses=1)]) == {"workers": 2, "max_clean_legs": 0}
