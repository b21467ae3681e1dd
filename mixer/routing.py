"""The routing table of docs/behaviour.md as a pure function.

This module is the only place that decides who hears whom. Every mixer (the batched engine and
the per-call reference) takes its gains from :func:`route`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .roles import Role, SupervisorMode


@dataclass(frozen=True, slots=True)
class LegRouting:
    """What routing needs to know about one leg of a call."""

    role: Role
    mode: SupervisorMode | None = None  # supervisors only
    muted: bool = False
    held: bool = False
    gain: float = 1.0  # speaker gain applied wherever this leg is heard

    def __post_init__(self) -> None:
        if self.role is Role.SUPERVISOR and self.mode is None:
            raise ValueError("a supervisor leg needs a mode (monitor, barge or coach)")
        if self.role is not Role.SUPERVISOR and self.mode is not None:
            raise ValueError(f"mode is for supervisor legs only, not for role {self.role.value!r}")


def hears(listener: LegRouting, speaker: LegRouting) -> bool:
    """One cell of the routing table (listener and speaker are different legs)."""
    if listener.held or speaker.held or speaker.muted:
        return False
    if speaker.role is Role.SUPERVISOR:
        if speaker.mode is SupervisorMode.MONITOR:
            return False
        if speaker.mode is SupervisorMode.COACH:
            return listener.role in (Role.AGENT, Role.SUPERVISOR)
        return True  # barge: heard by every party and every other supervisor
    # customer, agent and other parties are heard by every other leg
    return True


def route(legs: Sequence[LegRouting]) -> np.ndarray:
    """Gains of one call: ``g[listener, speaker]`` (float32, diagonal zero: mix-minus)."""
    n = len(legs)
    gains = np.zeros((n, n), dtype=np.float32)
    for li, listener in enumerate(legs):
        for si, speaker in enumerate(legs):
            if li != si and hears(listener, speaker):
                gains[li, si] = speaker.gain
    return gains
