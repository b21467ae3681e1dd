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


# The recording hears a call as its customer would: never a monitoring or coaching supervisor, never a
# muted or held leg (and, unlike a listener, the customer themself too).
_RECORDER = LegRouting(Role.CUSTOMER)
CONTACT_CENTER_SIDE = frozenset({Role.AGENT, Role.SUPERVISOR})  # left channel; everyone else is the caller's side


def recording_gains(legs: Sequence[LegRouting], channels: tuple[bool, bool] = (True, True)) -> np.ndarray:
    """Gains of a call's stereo recording: ``g[channel, speaker]`` (float32, 2 x n). Channel 0 (left) is
    the contact center's side (the agent, a barging supervisor), channel 1 (right) the caller's side
    (the customer and any other party). ``channels`` turns either side off (queue setting ``record``)."""
    gains = np.zeros((2, len(legs)), dtype=np.float32)
    for si, speaker in enumerate(legs):
        ch = 0 if speaker.role in CONTACT_CENTER_SIDE else 1
        if channels[ch] and hears(_RECORDER, speaker):
            gains[ch, si] = speaker.gain
    return gains


def route(legs: Sequence[LegRouting]) -> np.ndarray:
    """Gains of one call: ``g[listener, speaker]`` (float32, diagonal zero: mix-minus)."""
    n = len(legs)
    gains = np.zeros((n, n), dtype=np.float32)
    for li, listener in enumerate(legs):
        for si, speaker in enumerate(legs):
            if li != si and hears(listener, speaker):
                gains[li, si] = speaker.gain
    return gains
