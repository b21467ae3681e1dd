"""Call control for the simulator: the interface, and a direct-to-mixer implementation.

The simulator decides *what* simulated people do; a :class:`CallControl` carries it out and says what
happened (an accepted action returns the mixer leg it concerns; a refused one returns :class:`Refused`
with a SIP-style code and a reason). The simulator updates its own model of who is where only from
what it asked for and was accepted, never by reading the mixer's routing back, so the checker's
expectations stay independent of the mixer.

``SignalingControl`` (``simulator.signaling_control``) drives the real sans-IO signaling core;
:class:`DirectControl` drives the mixer only and exists as a reference and for isolating mixer
problems (``--control direct``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from bargein.mixer import LegRouting, MixerEngine, Role, SupervisorMode
from bargein.mixer.limits import LimitError

Mode = Literal["monitor", "barge", "coach"]


@dataclass(frozen=True, slots=True)
class Refused:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class PlacedCall:
    call_id: str
    agent: str
    customer_leg: int
    agent_leg: int


@dataclass(frozen=True, slots=True)
class Ended:
    """A supervisor session that ended because the call ended, with the reason the supervisor was given."""

    supervisor: str
    reason: str


class CallControl(Protocol):
    engine: MixerEngine

    def setup(self, agents: list[str], supervisors: list[str]) -> None: ...

    def place_call(self, customer: str) -> PlacedCall | Refused: ...

    def hangup(self, call_id: str, by: Literal["agent", "customer"]) -> list[Ended]: ...

    def add_party(self, call_id: str, agent: str, party: str) -> int | Refused: ...

    def drop_party(self, call_id: str, party: str) -> None: ...

    def monitor(self, supervisor: str, call_id: str) -> int | Refused: ...

    def set_mode(self, supervisor: str, call_id: str, mode: Mode) -> Refused | None: ...

    def leave(self, supervisor: str, call_id: str) -> None: ...

    def set_muted(self, call_id: str, who: str, muted: bool, by: str) -> Refused | None: ...

    def set_held(self, call_id: str, who: str, held: bool, by: str) -> Refused | None: ...

    def close(self) -> None: ...


@dataclass
class _DirectCall:
    agent: str
    legs: dict[str, int] = field(default_factory=dict)  # user -> mixer leg
    muted_by: dict[str, str] = field(default_factory=dict)


class DirectControl:
    """Applies every action straight to the mixer (no signaling, no permissions): a reference path."""

    def __init__(self, engine: MixerEngine) -> None:
        self.engine = engine
        self._free_agents: list[str] = []
        self._calls: dict[str, _DirectCall] = {}
        self._n = 0

    def setup(self, agents: list[str], supervisors: list[str]) -> None:
        self._free_agents = list(reversed(agents))

    def place_call(self, customer: str) -> PlacedCall | Refused:
        if not self._free_agents:
            return Refused(480, "no agent available")
        agent = self._free_agents.pop()
        self._n += 1
        call_id = f"call-{self._n}"
        c = self._calls[call_id] = _DirectCall(agent)
        c.legs[customer] = self.engine.add_leg(call_id, LegRouting(Role.CUSTOMER))
        c.legs[agent] = self.engine.add_leg(call_id, LegRouting(Role.AGENT))
        return PlacedCall(call_id, agent, c.legs[customer], c.legs[agent])

    def hangup(self, call_id: str, by: Literal["agent", "customer"]) -> list[Ended]:
        c = self._calls.pop(call_id)
        self.engine.remove_call(call_id)
        self._free_agents.insert(0, c.agent)
        return []

    def add_party(self, call_id: str, agent: str, party: str) -> int | Refused:
        try:
            leg = self.engine.add_leg(call_id, LegRouting(Role.PARTY))
        except LimitError as err:
            return Refused(486, str(err))
        self._calls[call_id].legs[party] = leg
        return leg

    def drop_party(self, call_id: str, party: str) -> None:
        self.engine.remove_leg(self._calls[call_id].legs.pop(party))

    def monitor(self, supervisor: str, call_id: str) -> int | Refused:
        if call_id not in self._calls:
            return Refused(481, "no such call")
        try:
            leg = self.engine.add_leg(call_id, LegRouting(Role.SUPERVISOR, SupervisorMode.MONITOR))
        except LimitError as err:
            return Refused(486, str(err))
        self._calls[call_id].legs[supervisor] = leg
        return leg

    def set_mode(self, supervisor: str, call_id: str, mode: Mode) -> Refused | None:
        c = self._calls[call_id]
        leg = c.legs[supervisor]
        was = self.engine.routing_of(leg).mode
        try:
            self.engine.set_routing(leg, replace(self.engine.routing_of(leg), mode=SupervisorMode(mode)))
        except LimitError as err:
            return Refused(486, str(err))
        if was is SupervisorMode.BARGE and mode != "barge":  # a barge's mutes end with it, as in the core
            for who, by in list(c.muted_by.items()):
                if by == supervisor:
                    self.set_muted(call_id, who, False, by=supervisor)
        return None

    def leave(self, supervisor: str, call_id: str) -> None:
        c = self._calls[call_id]
        self.engine.remove_leg(c.legs.pop(supervisor))
        for who, by in list(c.muted_by.items()):  # nobody stays muted by a supervisor who left
            if by == supervisor:
                self.set_muted(call_id, who, False, by=supervisor)

    def set_muted(self, call_id: str, who: str, muted: bool, by: str) -> Refused | None:
        c = self._calls[call_id]
        self.engine.set_routing(c.legs[who], replace(self.engine.routing_of(c.legs[who]), muted=muted))
        if muted:
            c.muted_by[who] = by
        else:
            c.muted_by.pop(who, None)
        return None

    def set_held(self, call_id: str, who: str, held: bool, by: str) -> Refused | None:
        leg = self._calls[call_id].legs[who]
        self.engine.set_routing(leg, replace(self.engine.routing_of(leg), held=held))
        return None

    def close(self) -> None:
        return None
