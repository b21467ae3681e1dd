"""The simulator's discrete events and their schedule.

Each kind of thing a simulated person does is a small frozen dataclass; the simulation maps each class
to its handler in an explicit table. Events about a call carry the call's slot and generation, so an
event scheduled for a call that has since ended (and whose slot was reused) is recognised and ignored.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Arrival:
    """A customer calls the queue (and the next arrival is scheduled)."""


@dataclass(frozen=True, slots=True)
class CallEvent:
    idx: int  # call slot
    gen: int  # which call held the slot when the event was scheduled


@dataclass(frozen=True, slots=True)
class Hangup(CallEvent):
    by: Literal["agent", "customer"]


@dataclass(frozen=True, slots=True)
class SelfMute(CallEvent):
    """The agent or the customer (drawn when it happens) mutes themselves."""


@dataclass(frozen=True, slots=True)
class SelfUnmute(CallEvent):
    who: str


@dataclass(frozen=True, slots=True)
class Hold(CallEvent):
    """The agent holds the customer."""


@dataclass(frozen=True, slots=True)
class Unhold(CallEvent):
    pass


@dataclass(frozen=True, slots=True)
class ThirdParty(CallEvent):
    """The agent brings in a third party."""


@dataclass(frozen=True, slots=True)
class PartyLeaves(CallEvent):
    party: str


@dataclass(frozen=True, slots=True)
class SupervisorIdle:
    """A free supervisor picks a call to monitor."""

    supervisor: str


@dataclass(frozen=True, slots=True)
class SupervisorAct:
    """A supervisor on a call acts (barge, coach, monitor, leave, mute a party)."""

    supervisor: str
    session: int  # stale when the supervisor has moved on since


Event = Arrival | Hangup | SelfMute | SelfUnmute | Hold | Unhold | ThirdParty | PartyLeaves | SupervisorIdle | SupervisorAct


class Schedule:
    """Events by tick; events due on the same tick come out in the order they were scheduled."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Event]] = []
        self._seq = 0

    def at(self, tick: int, event: Event) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (tick, self._seq, event))

    def due(self, tick: int) -> Iterator[Event]:
        """Pop every event due at or before ``tick`` (including ones scheduled while iterating)."""
        heap = self._heap
        while heap and heap[0][0] <= tick:
            yield heapq.heappop(heap)[2]

    def __len__(self) -> int:
        return len(self._heap)
