"""What the sans-IO core asks its adapter to do: every core entry point returns a list of these, in order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bargein.mixer.routing import LegRouting

ConnId = str


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` on ``conn``. With ``media_leg`` set the frame answers an SDP offer (``media_offer``):
    the adapter opens the leg's media first and puts the answer in ``message["sdp"]``."""

    conn: ConnId
    message: dict[str, Any]
    media_leg: str | None = None
    media_offer: str | None = None


@dataclass(frozen=True, slots=True)
class AddLeg:
    call_id: str
    leg: str
    routing: LegRouting
    conn: ConnId
    user: str


@dataclass(frozen=True, slots=True)
class UpdateLeg:
    call_id: str
    leg: str
    routing: LegRouting


@dataclass(frozen=True, slots=True)
class RemoveLeg:
    call_id: str
    leg: str


@dataclass(frozen=True, slots=True)
class MeterCall:
    """Measure (``on``) or stop measuring who talks on the call: its supervisors are sent ``NOTIFY levels``
    (:mod:`.levels`); the adapter reports levels with ``SignalingCore.leg_levels``."""

    call_id: str
    on: bool


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close that transport (e.g. the same user signed in elsewhere, or the server is full)."""

    conn: ConnId
    reason: str


Action = Send | AddLeg | UpdateLeg | RemoveLeg | MeterCall | CloseConnection
