"""What observers see: the agents and calls views (SUBSCRIBE, ``/api/*``), call-state NOTIFYs to participants."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from bargein.mixer.roles import Role

from .actions import Action, ConnId
from .chat import Chat
from .directory import Directory, User
from .model import AgentStatus, Call, CallState, Connection
from .settings import Settings


def natural(name: str) -> list[Any]:
    """Sort key that puts agent2 before agent10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def participants(call: Call) -> list[dict[str, Any]]:
    return [{"user": p.user, "role": p.role.value, "mode": p.mode.value if p.mode else None,
             "muted": p.muted, "held": p.held} for p in call.participants.values()]


def supervisors(call: Call) -> list[dict[str, Any]]:
    return [{"user": p.user, "mode": p.mode.value} for p in call.supervisors() if p.mode]


def call_state(call: Call, conns: Mapping[ConnId, Connection]) -> list[Action]:
    """Tell every participant who is on the call and in which mode (agents see supervision)."""
    parts = participants(call)
    sups = supervisors(call)
    out: list[Action] = []
    for p in call.participants.values():
        c = conns.get(p.conn)
        if c is None:
            continue
        if p.role is Role.CUSTOMER:  # a customer is never told about supervisors
            visible = [q for q in parts if q["role"] != Role.SUPERVISOR.value]
            out.append(c.notify("call-state", call_id=call.call_id, state=call.state.value, participants=visible))
        else:
            out.append(c.notify("call-state", call_id=call.call_id, state=call.state.value, participants=parts,
                                supervisors=sups))
    return out


def signed_in(user: User, directory: Directory, settings: Settings, agent: AgentStatus | None) -> dict[str, Any]:
    """What the REGISTER response tells a user about itself and the instance."""
    return {"user": user.name, "role": user.role, "profile": user.profile,
            "display_name": user.display_name or user.name, "permissions": sorted(directory.permissions(user)),
            "queues": sorted(settings.queues), "default_queue": settings.default_queue,
            "enhanced_monitoring": settings.enhanced_monitoring, "state": agent.state.value if agent else None}


def agents_view(agents: Mapping[str, AgentStatus], calls: Mapping[str, Call], online: Mapping[str, ConnId],
                directory: Directory, settings: Settings, now: float,
                chats: Callable[[str], list[Chat]] | None = None) -> list[dict[str, Any]]:
    """One row per agent: its voice call and its live chats (``chat_count``, ``chats``: a supervisor picks one)."""
    rows = []
    for name, st in sorted(agents.items(), key=lambda kv: natural(kv[0])):
        user = directory.user(name)
        call = calls.get(st.call_id) if st.call_id else None
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
            "chat_count": len(live_chats),
            "chats": live_chats,
        })
    return rows


def calls_view(calls: Mapping[str, Call], settings: Settings, now: float) -> list[dict[str, Any]]:
    return [{"call_id": c.call_id, "queue": c.queue, "state": c.state.value, "customer": c.customer,
             "agent": c.agent, "duration_s": round(now - c.answered, 1) if c.answered else None,
             "monitoring_allowed": settings.queues[c.queue].monitoring_allowed,
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
