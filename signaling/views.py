"""What observers see: the agents and calls views (SUBSCRIBE, ``/api/*``), call-state NOTIFYs to participants."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from bargein.mixer.roles import Role

from . import messages as m
from .actions import Action, ConnId, Send
from .chat import Chat
from .directory import Directory, User
from .levels import TALKING_RMS
from .model import AgentStatus, Call, CallState, Connection, Participant
from .settings import Settings


def natural(name: str) -> list[Any]:
    """Sort key that puts agent2 before agent10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def participants(call: Call) -> list[dict[str, Any]]:
    """Everyone on the call; ``muted_by`` names the supervisor who muted a party (never shown to customers)."""
    return [{"user": p.user, "role": p.role.value, "mode": p.mode.value if p.mode else None,
             "muted": p.is_muted, "held": p.is_held, "muted_by": p.muted_by} for p in call.participants.values()]


def levels(call: Call, by_leg: Mapping[str, float]) -> list[dict[str, Any]]:
    """``NOTIFY levels`` rows (to supervisors only): each measured participant's loudest level of the window
    (RMS, 0..1 of full scale, of what its microphone sent) and whether that is speech."""
    return [{"user": p.user, "role": p.role.value, "level": round(by_leg[p.leg], 4),
             "talking": by_leg[p.leg] >= TALKING_RMS} for p in call.participants.values() if p.leg in by_leg]


def supervisors(call: Call) -> list[dict[str, Any]]:
    return [{"user": p.user, "mode": p.mode.value} for p in call.supervisors() if p.mode]


def media_lost(call: Call, p: Participant, c: Connection) -> Action:
    """What a party whose media died is told (the others are told like for a hang-up)."""
    why = "your media connection was lost"
    if p.role is Role.SUPERVISOR:
        return c.notify("session-ended", call_id=call.call_id, reason=why)
    if p.role is Role.CUSTOMER and call.state is CallState.RINGING:  # its INVITE has no final response yet
        return Send(c.conn, m.response(call.customer_cseq, "INVITE", 480, why, call_id=call.call_id))
    return c.request("BYE", call_id=call.call_id, reason=why)


def caller_view(call: Call) -> dict[str, Any]:
    """The call as a customer or other party may see it: no supervisors, and nothing a supervisor did (a
    supervisor's mute or hold shows only to the agent and supervisors)."""
    def held(p: Participant) -> bool:
        owner = call.participants.get(p.held_by) if p.held_by else None
        return p.held or (owner is not None and owner.role is not Role.SUPERVISOR)

    # answered_at / queue: server timestamps, so every page shows the same call duration; a mute shows as a
    # mute (the party must know its microphone is off), never who set it
    return {"call_id": call.call_id, "state": call.state.value, "queue": call.queue, "answered_at": call.answered,
            "participants": [{"user": p.user, "role": p.role.value, "mode": None, "muted": p.is_muted,
                              "held": held(p)}
                             for p in call.participants.values() if p.role is not Role.SUPERVISOR]}


def call_state(call: Call, conns: Mapping[ConnId, Connection]) -> list[Action]:
    """Tell every participant who is on the call and in which mode (the agent and supervisors see supervision).
    A customer or other party is sent its view only when that view changed, so nothing a supervisor does
    (joining, leaving, changing mode, muting) causes a message to them."""
    parts = participants(call)
    sups = supervisors(call)
    common = {"call_id": call.call_id, "state": call.state.value, "queue": call.queue, "answered_at": call.answered}
    out: list[Action] = []
    for p in call.participants.values():
        c = conns.get(p.conn)
        if c is None:
            continue
        if p.caller_side:
            view = caller_view(call)
            if view != p.shown:
                p.shown = view
                out.append(c.notify("call-state", **view))
        else:
            out.append(c.notify("call-state", **common, participants=parts, supervisors=sups))
    return out


def signed_in(user: User, directory: Directory, settings: Settings, agent: AgentStatus | None,
              now: float | None = None) -> dict[str, Any]:
    """What the REGISTER response tells a user about itself and the instance; ``server_time`` lets a page
    read the server's clock (durations are computed from the server's timestamps)."""
    return {"user": user.name, "role": user.role, "profile": user.profile, "server_time": now,
            "display_name": user.display_name or user.name, "permissions": sorted(directory.permissions(user)),
            "queues": sorted(settings.queues), "default_queue": settings.default_queue,
            "enhanced_monitoring": settings.enhanced_monitoring, "state": agent.state.value if agent else None}


def agents_view(agents: Mapping[str, AgentStatus], calls: Mapping[str, Call], online: Mapping[str, ConnId],
                directory: Directory, settings: Settings, now: float,
                chats: Callable[[str], list[Chat]] | None = None) -> list[dict[str, Any]]:
    """One row per agent: its voice call and its live chats (``chat_count``, ``chats``: a supervisor picks one).
    Times are server epoch seconds: ``state_since`` (when the agent entered its current state: answered, started
    ringing, or last changed availability) and ``answered_at`` tick on the page."""
    rows = []
    for name, st in sorted(agents.items(), key=lambda kv: natural(kv[0])):
        user = directory.user(name)
        call = calls.get(st.call_id) if st.call_id else None
        customer = directory.user(call.customer) if call else None
        if call is not None and call.state is CallState.ACTIVE:
            since = call.answered
        elif call is not None:
            pending = call.pending
            since = pending.deadline - settings.ring_timeout_s if pending and pending.user == name else call.created
        else:
            since = st.since or None  # 0: not seen since the server started
        live_chats = [ch.summary() for ch in chats(name)] if chats else []
        rows.append({
            "agent": name,
            "display_name": user.display_name if user else name,
            "online": name in online,
            "state": ("on-call" if call and call.state is CallState.ACTIVE else
                      "ringing" if call else st.state.value if name in online else "offline"),
            "availability": st.state.value,
            "call_id": call.call_id if call else None,
            "queue": call.queue if call else None,
            "customer": call.customer if call else None,
            "call_duration_s": round(now - call.answered, 1) if call and call.answered else None,
            "monitoring_allowed": settings.queues[call.queue].monitoring_allowed if call else None,
            "supervisors": supervisors(call) if call else [],
            "state_since": since,
            "answered_at": call.answered if call else None,
            "customer_name": (customer.display_name or customer.name) if customer else call.customer if call else None,
            "participants": participants(call) if call else [],
            "chat_count": len(live_chats),
            "chats": live_chats,
        })
    return rows


def calls_view(calls: Mapping[str, Call], settings: Settings, now: float) -> list[dict[str, Any]]:
    return [{"call_id": c.call_id, "queue": c.queue, "state": c.state.value, "customer": c.customer,
             "agent": c.agent, "duration_s": round(now - c.answered, 1) if c.answered else None,
             "monitoring_allowed": settings.queues[c.queue].monitoring_allowed,
             "created_at": c.created, "answered_at": c.answered,
             "participants": participants(c)} for c in calls.values()]


class Subscribers:
    """Connections subscribed to the agents / calls views; each change is fanned out as NOTIFYs."""

    def __init__(self) -> None:
        self._conns: set[ConnId] = set()

    def add(self, c: Connection, event: str, view: Callable[[], list[dict[str, Any]]]) -> Action:
        """Subscribe ``c`` to ``event``; returns the first NOTIFY, with the view as it is now."""
        c.subscriptions.add(event)
        self._conns.add(c.conn)
        return c.notify(event, **{event: view()})

    def fan_out(self, conns: Mapping[ConnId, Connection], agents: Callable[[], list[dict[str, Any]]],
                calls: Callable[[], list[dict[str, Any]]]) -> list[Action]:
        """One NOTIFY per subscription; each view is built at most once, and only if someone wants it."""
        out: list[Action] = []
        agents_rows = calls_rows = None
        for conn in list(self._conns):
            c = conns.get(conn)
            if c is None:
                self._conns.discard(conn)
                continue
            if "agents" in c.subscriptions:
                agents_rows = agents_rows if agents_rows is not None else agents()
                out.append(c.notify("agents", agents=agents_rows))
            if "calls" in c.subscriptions:
                calls_rows = calls_rows if calls_rows is not None else calls()
                out.append(c.notify("calls", calls=calls_rows))
        return out
