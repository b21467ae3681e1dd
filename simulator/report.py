"""The simulation report: counters, timing, and every routing violation (the first ones listed)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# fields that depend on the machine's speed, not on the scenario: left out when comparing two runs
TIMING_FIELDS = frozenset({"tick_ms", "deadline_misses", "wall_time_s", "ticks_skipped", "setup_s"})


@dataclass
class Report:
    scenario: dict[str, Any] = field(default_factory=dict)
    path: str = "in-process"
    control: str = "signaling"
    clock: str = "virtual"
    rate: int = 48000
    simulated_s: float = 0.0
    ticks: int = 0
    ticks_skipped: int = 0
    calls_started: int = 0
    calls_completed: int = 0
    calls_refused: int = 0
    calls_hung_up_by_agent: int = 0
    calls_hung_up_by_customer: int = 0
    peak_concurrent_calls: int = 0
    peak_legs: int = 0
    monitor_sessions: int = 0
    barge_toggles: int = 0
    coach_toggles: int = 0
    monitor_toggles: int = 0
    supervisor_leaves: int = 0
    supervision_ended_by_call_end: int = 0
    supervision_end_reasons_missing: int = 0
    party_mutes: int = 0
    supervisor_mutes: int = 0
    holds: int = 0
    third_parties: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    routing_checks: int = 0
    listener_checks: int = 0
    checked_ticks: int = 0
    routing_violations: int = 0
    windows_measured_again: int = 0  # server mode: a window that looked wrong, measured once more (audio gaps)
    violations: list[dict[str, Any]] = field(default_factory=list)
    deadline_misses: int = 0
    tick_ms: dict[str, float] = field(default_factory=lambda: {"p50": 0.0, "p99": 0.0, "max": 0.0})
    frames_missing: int = 0
    frames_dropped: int = 0
    setup_s: float = 0.0
    wall_time_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    chats: dict[str, Any] = field(default_factory=dict)  # chat contacts (scenario.chats), see chat_sim.py

    def refuse(self, code: int, reason: str) -> None:
        key = f"{code} {reason}"
        self.refusals[key] = self.refusals.get(key, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def deterministic(self) -> dict[str, Any]:
        """The report without machine-dependent timing: equal for equal scenarios on the virtual clock."""
        return {k: v for k, v in self.to_dict().items() if k not in TIMING_FIELDS}

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")

    @property
    def ok(self) -> bool:
        return self.routing_violations == 0 and not self.chats.get("violations")
