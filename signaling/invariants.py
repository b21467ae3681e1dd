"""Invariants of the core's state, checked by the tests after every handled message (and usable on a live
server): no call outlives its parties' connections, no user is in two calls, and the mixer holds exactly
the legs of live participants."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from bargein.mixer.roles import Role

from .model import Availability, CallState

if TYPE_CHECKING:
    from .core import SignalingCore


def violations(core: SignalingCore, legs: Mapping[str, str] | None = None) -> list[str]:
    """Every broken invariant, described. ``legs`` maps each mixer leg the adapter holds to its call id
    (None skips the mixer check)."""
    out: list[str] = []
    in_calls: Counter[str] = Counter()
    expected_legs: dict[str, str] = {}
    for call_id, call in core.calls.items():
        where = f"call {call_id}"
        if call.call_id != call_id or call.state is CallState.ENDED:
            out.append(f"{where}: listed but {call.state.value}")
        for name, p in call.participants.items():
            c = core.conns.get(p.conn)
            if name != p.user or c is None or c.user is None or c.user.name != p.user:
                out.append(f"{where}: participant {name} has no live connection of its own ({p.conn})")
            elif core.online.get(p.user) != p.conn:
                out.append(f"{where}: participant {name} is on {p.conn}, not its current session")
            in_calls[p.user] += 1
            if p.leg in expected_legs:
                out.append(f"{where}: leg {p.leg} belongs to two participants")
            expected_legs[p.leg] = call_id
        roles = Counter(p.role for p in call.participants.values())
        if roles[Role.CUSTOMER] != 1 or roles[Role.AGENT] != (call.state is CallState.ACTIVE):
            out.append(f"{where} ({call.state.value}): {dict(roles)} is not one customer and, once answered, "
                       f"one agent")
        if (p := call.pending) is not None:
            if p.conn not in core.conns or core.online.get(p.user) != p.conn:
                out.append(f"{where}: pending INVITE to {p.user} on a dead connection")
            in_calls[p.user] += 1
        if core.user_call.get(call.customer) != call_id:
            out.append(f"{where}: its customer {call.customer} is not marked as in it")
    for user, n in in_calls.items():
        if n > 1:
            out.append(f"{user} is in {n} calls (or twice in one)")
    for user, call_id in core.user_call.items():
        call = core.calls.get(call_id)
        pending = call.pending.user if call and call.pending else None
        if call is None or (user not in call.participants and user != pending):
            out.append(f"{user} is marked as in {call_id} but is not in it")
    for name, st in core.agents.items():
        call = core.calls.get(st.call_id) if st.call_id else None
        if st.call_id and (call is None or name not in call.participants and (call.pending is None
                                                                                or call.pending.user != name)):
            out.append(f"agent {name} is attached to {st.call_id} but is not in it")
    for name in core.acd.idle():
        st = core.agents[name]
        if name not in core.online or name in core.user_call or st.state is not Availability.AVAILABLE or st.call_id:
            out.append(f"agent {name} is offered calls but is not idle")
    if legs is not None:
        for leg, call_id in legs.items():
            if expected_legs.get(leg) != call_id:
                out.append(f"mixer leg {leg} (call {call_id}) belongs to no live participant")
        for leg, call_id in expected_legs.items():
            if leg not in legs:
                out.append(f"participant leg {leg} of call {call_id} is not in the mixer")
    return out


def check(core: SignalingCore, legs: Mapping[str, str] | None = None) -> None:
    """Raise AssertionError listing every broken invariant."""
    found = violations(core, legs)
    if found:
        raise AssertionError("signaling invariants broken:\n  " + "\n  ".join(found))
