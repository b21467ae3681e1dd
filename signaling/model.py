"""The core's state: connections, calls, their participants, pending invitations, agents' availability."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bargein.mixer.roles import Role, SupervisorMode
from bargein.mixer.routing import LegRouting

from . import messages as m
from .actions import ConnId, Send
from .directory import User
from .ratelimit import TokenBucket
from .records import ContactRecord, MonitorRecord


class CallState(StrEnum):
    RINGING = "ringing"  # created, an agent is being offered the call
    ACTIVE = "active"  # an agent answered
    ENDED = "ended"


class Availability(StrEnum):
    """What an agent published (PUBLISH ``state``)."""

    AVAILABLE = "available"
    AWAY = "away"
    OFFLINE = "offline"


@dataclass
class Connection:
    conn: ConnId
    bucket: TokenBucket
    remote: str | None = None  # the peer's address, for limits that outlive connections
    user: User | None = None
    last_cseq: int = -1
    subscriptions: set[str] = field(default_factory=set)
    server_cseq: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def me(self) -> User:
        """The signed-in user (requests other than REGISTER are handled only after sign-in)."""
        assert self.user is not None
        return self.user

    def request(self, method: str, **fields: Any) -> Send:
        """A server-originated request on this connection, numbered with the server's own cseq."""
        return Send(self.conn, m.request(method, next(self.server_cseq), **fields))

    def notify(self, event: str, **fields: Any) -> Send:
        return self.request("NOTIFY", event=event, **fields)


@dataclass
class Participant:
    user: str
    role: Role
    leg: str
    conn: ConnId
    mode: SupervisorMode | None = None
    muted: bool = False
    held: bool = False
    muted_by: str | None = None  # a supervisor who muted this party; undone when they leave
    record: MonitorRecord | None = None

    def routing(self) -> LegRouting:
        return LegRouting(self.role, self.mode, muted=self.muted, held=self.held)


@dataclass
class PendingInvite:
    """A server INVITE to an agent (answering a queue call) or to a third party (REFER)."""

    call_id: str
    user: str
    conn: ConnId
    cseq: int
    role: Role
    deadline: float
    referred_by: str | None = None


@dataclass
class Call:
    call_id: str
    queue: str
    customer: str
    customer_conn: ConnId
    customer_cseq: int  # the customer's INVITE, answered finally with 200/4xx
    created: float
    state: CallState = CallState.RINGING
    agent: str | None = None
    answered: float | None = None
    participants: dict[str, Participant] = field(default_factory=dict)
    pending: PendingInvite | None = None
    tried_agents: set[str] = field(default_factory=set)
    record: ContactRecord | None = None

    def supervisors(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.role is Role.SUPERVISOR]

    def roles(self, without: Participant | None = None) -> list[tuple[Role, SupervisorMode | None]]:
        """(role, mode) of every participant, the input of the call limits."""
        return [(p.role, p.mode) for p in self.participants.values() if p is not without]


@dataclass
class AgentStatus:
    state: Availability = Availability.OFFLINE
    call_id: str | None = None
    since: float = 0.0
