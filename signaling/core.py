"""The sans-IO signaling core: connections, users, calls, legs, monitor / barge / coach.

No sockets, no asyncio. Feed it what happened and it returns what to do:

    core = SignalingCore(settings, directory)
    core.connect("c1")                          # a transport opened
    actions = core.handle("c1", raw_json)       # a frame arrived (str, bytes or dict)
    actions = core.disconnect("c1")             # the transport went away
    actions = core.poll()                       # call now and then: ring timeouts
    actions = core.media_failed(leg_key)        # the media of a leg died: freed like a BYE

Every call returns a list of actions, in order:

- :class:`Send` ``(conn, message)``: send this frame. When ``media_leg`` is set the frame answers an
  SDP offer (``media_offer``): the adapter opens the leg's media first and puts the answer in
  ``message["sdp"]``.
- :class:`AddLeg`, :class:`UpdateLeg`, :class:`RemoveLeg`: apply to the mixer. The core decides who is
  in which call in which role and mode; :func:`mixer.routing.route` alone decides who hears whom.
- :class:`CloseConnection`: close that transport (the same user signed in elsewhere).

Time comes from the injected ``clock`` (seconds), so tests control it.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from bargein.mixer.limits import LimitError
from bargein.mixer.roles import Role, SupervisorMode
from bargein.mixer.routing import LegRouting

from . import messages as m
from .directory import Directory, User, demo_directory
from .records import ContactRecord, MonitorRecord, Records
from .settings import Settings

log = structlog.get_logger("bargein.signaling")

ConnId = str


def _natural(name: str) -> list[Any]:
    """Sort key that puts agent2 before agent10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


# ---------------------------------------------------------------------------------------- actions
@dataclass(frozen=True, slots=True)
class Send:
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
class CloseConnection:
    conn: ConnId
    reason: str


Action = Send | AddLeg | UpdateLeg | RemoveLeg | CloseConnection


# ---------------------------------------------------------------------------------------- state
@dataclass
class Connection:
    conn: ConnId
    user: User | None = None
    last_cseq: int = -1
    tokens: float = 0.0
    refilled: float = 0.0
    subscriptions: set[str] = field(default_factory=set)
    server_cseq: itertools.count = field(default_factory=lambda: itertools.count(1))


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
    state: str = "ringing"  # ringing -> active -> ended
    agent: str | None = None
    answered: float | None = None
    participants: dict[str, Participant] = field(default_factory=dict)
    pending: PendingInvite | None = None
    tried_agents: set[str] = field(default_factory=set)
    record: ContactRecord | None = None

    def supervisors(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.role is Role.SUPERVISOR]


@dataclass
class AgentStatus:
    state: str = "offline"
    call_id: str | None = None
    since: float = 0.0


class SignalingCore:
    def __init__(self, settings: Settings | None = None, directory: Directory | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or Settings()
        self.directory = directory or demo_directory()
        self.clock = clock
        self.conns: dict[ConnId, Connection] = {}
        self.online: dict[str, ConnId] = {}
        self.agents: dict[str, AgentStatus] = {
            u.name: AgentStatus() for u in self.directory.users if u.role == "agent"}
        self.calls: dict[str, Call] = {}
        self.user_call: dict[str, str] = {}  # user -> call they are in (or ringing for)
        self.records = Records()
        self._idle: dict[str, None] = {}  # available agents not on a call, longest idle first
        self._pending: dict[tuple[ConnId, int], str] = {}  # (conn, server cseq) of an INVITE -> call id
        self._subscribers: set[ConnId] = set()
        self._ids = itertools.count(1)
        self._legs = itertools.count(1)

    def _clear_pending(self, call: Call) -> None:
        if call.pending is not None:
            self._pending.pop((call.pending.conn, call.pending.cseq), None)
            call.pending = None

    def _refresh_idle(self, name: str) -> None:
        """Keep ``_idle`` in step with an agent's availability and calls (queue order: longest idle first)."""
        st = self.agents.get(name)
        idle = (st is not None and st.state == "available" and st.call_id is None and name in self.online
                and name not in self.user_call)
        if idle and name not in self._idle:
            self._idle[name] = None
        elif not idle:
            self._idle.pop(name, None)

    # ------------------------------------------------------------------------------ transport
    def connect(self, conn: ConnId) -> list[Action]:
        if len(self.conns) >= self.settings.max_connections:
            log.warning("signaling.refused_connection", conn=conn, why="connection limit")
            return [CloseConnection(conn, "server full")]
        now = self.clock()
        self.conns[conn] = Connection(conn, tokens=self._burst, refilled=now)
        return []

    def disconnect(self, conn: ConnId) -> list[Action]:
        c = self.conns.pop(conn, None)
        if c is None or c.user is None:
            return []
        name = c.user.name
        out: list[Action] = []
        if self.online.get(name) == conn:
            del self.online[name]
            if name in self.agents:
                self.agents[name].state = "offline"
            self._refresh_idle(name)
        log.info("signaling.disconnected", user=name, conn=conn)
        out += self._user_gone(name, conn, why="disconnected")
        out += self._notify_views()
        return out

    @property
    def _burst(self) -> float:
        return max(5.0, 2 * self.settings.max_requests_per_second)

    def handle(self, conn: ConnId, raw: str | bytes | dict[str, Any]) -> list[Action]:
        c = self.conns.get(conn)
        if c is None:
            return []
        try:
            msg = m.parse(raw)
        except m.ParseError as exc:
            if not self._take_token(c):
                return [self._too_many(c, exc.cseq, exc.method)]
            log.info("signaling.bad_message", conn=conn, user=c.user.name if c.user else None,
                     status=exc.status, why=exc.reason)
            return [Send(conn, m.response(exc.cseq, exc.method, exc.status, exc.reason))]
        if not self._take_token(c):
            return [self._too_many(c, msg.cseq, getattr(msg, "method", None))]
        if isinstance(msg, m.Response):
            return self._on_response(c, msg)
        if msg.cseq <= c.last_cseq:
            return [Send(conn, m.response(msg.cseq, msg.method, 400,
                                          f"field 'cseq': {msg.cseq} was already used; cseq must increase "
                                          f"(last was {c.last_cseq})"))]
        c.last_cseq = msg.cseq
        if c.user is None and not isinstance(msg, m.Register):
            return [self._refuse(c, msg, 401, "sign in first: send REGISTER with your token")]
        try:
            return getattr(self, f"_on_{msg.method.lower()}")(c, msg)
        except Exception:  # a bug must cost one request, not the connection or the server
            log.exception("signaling.internal_error", conn=conn, method=msg.method)
            return [Send(conn, m.response(msg.cseq, msg.method, 500, "internal error; the server is still up"))]

    def _too_many(self, c: Connection, cseq: int | None, method: str | None) -> Send:
        log.warning("signaling.rate_limited", conn=c.conn, user=c.user.name if c.user else None)
        return Send(c.conn, m.response(cseq, method, 429,
                                       f"too many requests: at most {self.settings.max_requests_per_second:g}/s"))

    def _take_token(self, c: Connection) -> bool:
        now = self.clock()
        rate = self.settings.max_requests_per_second
        c.tokens = min(self._burst, c.tokens + (now - c.refilled) * rate)
        c.refilled = now
        if c.tokens < 1:
            return False
        c.tokens -= 1
        return True

    def poll(self) -> list[Action]:
        """Expire unanswered INVITEs (ring timeout)."""
        now = self.clock()
        out: list[Action] = []
        for call_id in {cid for cid in self._pending.values()}:
            call = self.calls.get(call_id)
            p = call.pending if call else None
            if p is not None and now >= p.deadline:
                log.info("signaling.ring_timeout", call_id=call.call_id, user=p.user)
                out += self._invite_failed(call, p, 408, f"{p.user} did not answer in {self.settings.ring_timeout_s:g} s",
                                           cancel=True)
        return out

    def media_failed(self, leg: str) -> list[Action]:
        """The leg's media transport closed or failed: free it like a BYE from its owner."""
        for call in list(self.calls.values()):
            for p in list(call.participants.values()):
                if p.leg == leg:
                    log.info("signaling.media_gone", call_id=call.call_id, user=p.user, leg=leg)
                    return self._leave(call, p, why="media connection lost") + self._notify_views()
        return []

    # ------------------------------------------------------------------------------ helpers
    def _refuse(self, c: Connection, msg: Any, status: int, reason: str, **kw: Any) -> Send:
        log.info("signaling.refused", user=c.user.name if c.user else None, method=msg.method,
                 status=status, why=reason, **kw)
        return Send(c.conn, m.response(msg.cseq, msg.method, status, reason))

    def _ok(self, c: Connection, msg: Any, status: int = 200, **fields: Any) -> Send:
        return Send(c.conn, m.response(msg.cseq, msg.method, status, **fields))

    def _server_request(self, conn: ConnId, method: str, **fields: Any) -> tuple[Send, int]:
        c = self.conns.get(conn)
        cseq = next(c.server_cseq) if c else 0
        return Send(conn, m.request(method, cseq, **fields)), cseq

    def _notify(self, conn: ConnId, event: str, **fields: Any) -> Send:
        return self._server_request(conn, "NOTIFY", event=event, **fields)[0]

    def _perm(self, c: Connection, perm: str) -> bool:
        assert c.user is not None
        return perm in self.directory.permissions(c.user)

    def _new_leg(self) -> str:
        return f"leg-{next(self._legs)}"

    def _call_for(self, c: Connection, msg: Any) -> tuple[Call | None, Participant | None, Send | None]:
        call = self.calls.get(msg.call_id)
        if call is None:
            return None, None, self._refuse(c, msg, 481, f"no call {msg.call_id!r}")
        assert c.user is not None
        p = call.participants.get(c.user.name)
        if p is None and not (call.customer == c.user.name and call.state == "ringing"):
            return None, None, self._refuse(c, msg, 403, f"you are not in call {msg.call_id!r}")
        return call, p, None

    # ------------------------------------------------------------------------------ requests
    def _on_register(self, c: Connection, msg: m.Register) -> list[Action]:
        user = self.directory.by_token(msg.token)
        if user is None:
            log.info("signaling.refused", method="REGISTER", status=401, why="unknown token", conn=c.conn)
            return [Send(c.conn, m.response(msg.cseq, "REGISTER", 401, "unknown token"))]
        out: list[Action] = []
        if c.user is not None and c.user.name != user.name:
            return [self._refuse(c, msg, 403, f"this connection is signed in as {c.user.name}")]
        old = self.online.get(user.name)
        if old is not None and old != c.conn:  # signed in elsewhere: the newest session wins
            log.info("signaling.session_replaced", user=user.name, old=old, new=c.conn)
            out += self.disconnect(old)
            out.append(CloseConnection(old, "signed in from another connection"))
        c.user = user
        if user.role == "agent" and user.name not in self.agents:  # added to the directory at run time
            self.agents[user.name] = AgentStatus()
        self.online[user.name] = c.conn
        self._refresh_idle(user.name)
        if user.name in self.agents:
            self.agents[user.name].since = self.clock()
        log.info("signaling.registered", user=user.name, role=user.role, profile=user.profile, conn=c.conn)
        out.append(self._ok(c, msg, user=user.name, role=user.role, profile=user.profile,
                            display_name=user.display_name or user.name,
                            permissions=sorted(self.directory.permissions(user)),
                            queues=sorted(self.settings.queues), default_queue=self.settings.default_queue,
                            enhanced_monitoring=self.settings.enhanced_monitoring,
                            state=self.agents[user.name].state if user.name in self.agents else None))
        return out + self._notify_views()

    def _on_options(self, c: Connection, msg: m.Options) -> list[Action]:
        return [self._ok(c, msg, allow=sorted(m.METHODS))]

    def _on_publish(self, c: Connection, msg: m.Publish) -> list[Action]:
        assert c.user is not None
        if c.user.name not in self.agents:
            return [self._refuse(c, msg, 403, "only agents have an availability state")]
        st = self.agents[c.user.name]
        st.state, st.since = msg.state, self.clock()
        self._refresh_idle(c.user.name)
        log.info("signaling.agent_state", user=c.user.name, state=msg.state)
        return [self._ok(c, msg, state=msg.state), *self._notify_views()]

    def _on_subscribe(self, c: Connection, msg: m.Subscribe) -> list[Action]:
        if not self._perm(c, "access_metrics"):
            return [self._refuse(c, msg, 403, f"profile {c.user.profile} lacks access_metrics")]  # type: ignore[union-attr]
        c.subscriptions.add(msg.event)
        self._subscribers.add(c.conn)
        view = self.agents_view() if msg.event == "agents" else self.calls_view()
        return [self._ok(c, msg, event=msg.event), self._notify(c.conn, msg.event, **{msg.event: view})]

    def _on_invite(self, c: Connection, msg: m.Invite) -> list[Action]:
        kind, _, target = msg.to.partition(":")
        return self._invite_queue(c, msg, target) if kind == "queue" else self._invite_monitor(c, msg, target)

    def _invite_queue(self, c: Connection, msg: m.Invite, queue: str) -> list[Action]:
        assert c.user is not None
        if c.user.role == "supervisor" or not self._perm(c, "ccp_access"):
            return [self._refuse(c, msg, 403, "only customers (or users with ccp_access) call a queue")]
        if queue not in self.settings.queues:
            return [self._refuse(c, msg, 404, f"no queue {queue!r}: queues are {', '.join(sorted(self.settings.queues))}")]
        if c.user.name in self.user_call:
            return [self._refuse(c, msg, 486, f"you are already in call {self.user_call[c.user.name]}")]
        now = self.clock()
        call_id = f"call-{next(self._ids)}"
        call = Call(call_id, queue, c.user.name, c.conn, msg.cseq, now)
        call.record = self.records.open_contact(call_id, queue, c.user.name, now)
        agent = self._pick_agent(call)
        if agent is None:
            self.records.close_contact(call.record, now, "no agent available", None)
            return [self._refuse(c, msg, 480, f"no agent available in queue {queue!r}", call_id=call_id)]
        self.calls[call_id] = call
        self.user_call[c.user.name] = call_id
        cust = Participant(c.user.name, Role.CUSTOMER, self._new_leg(), c.conn)
        call.participants[cust.user] = cust
        log.info("signaling.call_created", call_id=call_id, queue=queue, customer=c.user.name)
        out: list[Action] = [AddLeg(call_id, cust.leg, cust.routing(), c.conn, cust.user)]
        # early media: the SDP answer travels in 183 so audio flows as soon as the agent answers
        out.append(Send(c.conn, m.response(msg.cseq, "INVITE", 100, call_id=call_id)))
        if msg.sdp is not None:
            out.append(Send(c.conn, m.response(msg.cseq, "INVITE", 183, call_id=call_id, leg=cust.leg),
                            media_leg=cust.leg, media_offer=msg.sdp))
        out += self._ring(call, agent)
        return out

    def _pick_agent(self, call: Call) -> str | None:
        staffed = self.settings.queues[call.queue].agents
        for name in self._idle:
            if name in call.tried_agents or (staffed is not None and name not in staffed):
                continue
            user = self.directory.user(name)
            if user is None or user.queues is None or call.queue in user.queues:
                return name
        return None

    def _ring(self, call: Call, agent: str) -> list[Action]:
        conn = self.online[agent]
        send, cseq = self._server_request(conn, "INVITE", call_id=call.call_id, **{"from": call.customer},
                                          queue=call.queue, kind="queue")
        call.pending = PendingInvite(call.call_id, agent, conn, cseq, Role.AGENT,
                                     self.clock() + self.settings.ring_timeout_s)
        self._pending[(conn, cseq)] = call.call_id
        call.tried_agents.add(agent)
        self.user_call[agent] = call.call_id
        self.agents[agent].call_id = call.call_id
        self._refresh_idle(agent)
        log.info("signaling.ringing", call_id=call.call_id, agent=agent)
        return [send, Send(call.customer_conn, m.response(call.customer_cseq, "INVITE", 180, call_id=call.call_id,
                                                          agent=agent)), *self._notify_views()]

    def _on_response(self, c: Connection, msg: m.Response) -> list[Action]:
        if c.user is None or msg.method != "INVITE":
            return []  # responses to our BYE / NOTIFY need no action
        call = self.calls.get(self._pending.get((c.conn, msg.cseq), ""))
        if call is None or call.pending is None or (call.pending.conn, call.pending.cseq) != (c.conn, msg.cseq):
            log.info("signaling.stray_response", user=c.user.name, cseq=msg.cseq, status=msg.status)
            return []
        p = call.pending
        if msg.status < 200:
            return []
        if msg.status >= 300:
            return self._invite_failed(call, p, msg.status, f"{p.user} declined ({msg.status})")
        self._clear_pending(call)
        now = self.clock()
        part = Participant(p.user, p.role, self._new_leg(), c.conn)
        trial = [(q.role, q.mode) for q in call.participants.values()] + [(part.role, None)]
        try:
            self.settings.limits.check(trial)
        except LimitError as exc:
            self.user_call.pop(p.user, None)
            self._refresh_idle(p.user)
            return [self._server_request(c.conn, "BYE", call_id=call.call_id, reason=str(exc))[0]]
        call.participants[p.user] = part
        out: list[Action] = [AddLeg(call.call_id, part.leg, part.routing(), c.conn, p.user)]
        ack, _ = self._server_request(c.conn, "ACK", call_id=call.call_id, leg=part.leg)
        out.append(Send(ack.conn, ack.message, media_leg=part.leg if msg.sdp else None, media_offer=msg.sdp))
        if p.role is Role.AGENT:
            call.state, call.agent, call.answered = "active", p.user, now
            assert call.record is not None
            call.record.agent, call.record.answered = p.user, now
            self.records.changed(call.record)
            log.info("signaling.call_answered", call_id=call.call_id, agent=p.user, customer=call.customer)
            out.append(Send(call.customer_conn, m.response(call.customer_cseq, "INVITE", 200, call_id=call.call_id,
                                                           agent=p.user)))
        else:
            assert call.record is not None
            call.record.parties.append(p.user)
            self.records.changed(call.record)
            log.info("signaling.party_joined", call_id=call.call_id, party=p.user, referred_by=p.referred_by)
        out += self._call_state(call)
        return out + self._notify_views()

    def _invite_failed(self, call: Call, p: PendingInvite, status: int, why: str, cancel: bool = False) -> list[Action]:
        self._clear_pending(call)
        self.user_call.pop(p.user, None)
        if p.user in self.agents and self.agents[p.user].call_id == call.call_id:
            self.agents[p.user].call_id = None
        self._refresh_idle(p.user)
        out: list[Action] = []
        if cancel and p.conn in self.conns:
            out.append(self._server_request(p.conn, "CANCEL", call_id=call.call_id, reason=why)[0])
        if p.role is Role.PARTY:  # a REFER that failed: tell the agent, the call goes on
            if call.agent and call.agent in self.online:
                out.append(self._notify(self.online[call.agent], "refer-failed", call_id=call.call_id,
                                        target=p.user, status=status, reason=why))
            return out + self._notify_views()
        nxt = self._pick_agent(call)
        if nxt is not None:
            return out + self._ring(call, nxt)
        code = 408 if status == 408 else 480
        out.append(Send(call.customer_conn, m.response(call.customer_cseq, "INVITE", code,
                                                       f"no agent answered in queue {call.queue!r}",
                                                       call_id=call.call_id)))
        return out + self._end_call(call, "no agent answered", by=None, notify_customer=False)

    def _invite_monitor(self, c: Connection, msg: m.Invite, call_id: str) -> list[Action]:
        assert c.user is not None
        if not self._perm(c, "realtime_monitor"):
            return [self._refuse(c, msg, 403, f"profile {c.user.profile} lacks realtime_monitor", call_id=call_id)]
        call = self.calls.get(call_id)
        if call is None:
            return [self._refuse(c, msg, 404, f"no live call {call_id!r}")]
        if call.state != "active":
            return [self._refuse(c, msg, 480, f"call {call_id} is not answered yet")]
        if not self.settings.queues[call.queue].monitoring_allowed:
            return [self._refuse(c, msg, 403, f"monitoring is not allowed for calls in queue {call.queue!r}")]
        if c.user.name in self.user_call:
            return [self._refuse(c, msg, 486, f"you are already on call {self.user_call[c.user.name]}; leave it first")]
        mode = SupervisorMode(msg.mode)
        refusal = self._mode_refusal(c, call, None, mode)
        if refusal:
            return [self._refuse(c, msg, *refusal)]
        now = self.clock()
        sup = Participant(c.user.name, Role.SUPERVISOR, self._new_leg(), c.conn, mode=mode)
        sup.record = self.records.open_monitor(call_id, c.user.name, mode.value, now)
        call.participants[sup.user] = sup
        self.user_call[sup.user] = call_id
        log.info("signaling.monitor_started", call_id=call_id, supervisor=sup.user, mode=mode.value)
        out: list[Action] = [AddLeg(call_id, sup.leg, sup.routing(), c.conn, sup.user),
                             Send(c.conn, m.response(msg.cseq, "INVITE", 200, call_id=call_id, mode=mode.value,
                                                     leg=sup.leg, session_id=sup.record.session_id,
                                                     participants=self._participants(call)),
                                  media_leg=sup.leg if msg.sdp else None, media_offer=msg.sdp)]
        return out + self._call_state(call) + self._notify_views()

    def _mode_refusal(self, c: Connection, call: Call, sup: Participant | None,
                      mode: SupervisorMode) -> tuple[int, str] | None:
        assert c.user is not None
        if mode is SupervisorMode.MONITOR:
            trial = [(p.role, p.mode) for p in call.participants.values() if p is not sup]
            trial.append((Role.SUPERVISOR, mode))
        else:
            if not self._perm(c, "realtime_barge"):
                return 403, f"profile {c.user.profile} lacks realtime_barge: {mode.value} refused, still monitoring"
            if not self.settings.enhanced_monitoring:
                return 403, f"enhanced monitoring is off on this instance: {mode.value} is disabled"
            trial = [(p.role, p.mode) for p in call.participants.values() if p is not sup]
            trial.append((Role.SUPERVISOR, mode))
        try:
            self.settings.limits.check(trial)
        except LimitError as exc:
            return 486, str(exc)
        return None

    def _on_info(self, c: Connection, msg: m.Info) -> list[Action]:
        call, me, refusal = self._call_for(c, msg)
        if refusal:
            return [refusal]
        assert call is not None and c.user is not None
        if me is None:
            return [self._refuse(c, msg, 481, "the call is not answered yet")]
        if msg.action == "mode":
            return self._set_mode(c, msg, call, me)
        target = call.participants.get(msg.target) if msg.target else me
        if target is None:
            return [self._refuse(c, msg, 404, f"no participant {msg.target!r} in call {call.call_id}")]
        acting_on_other = target is not me
        if acting_on_other:
            barging = me.role is Role.SUPERVISOR and me.mode is SupervisorMode.BARGE
            agent_holds = msg.action == "hold" and me.role is Role.AGENT
            if not (barging or agent_holds):
                return [self._refuse(c, msg, 403, f"only a barging supervisor may {msg.action} another participant")]
            if target.role is Role.SUPERVISOR:
                return [self._refuse(c, msg, 403, "supervisors cannot act on other supervisors")]
        if msg.action == "drop":
            if not acting_on_other:
                return [self._refuse(c, msg, 400, "field 'target': name the participant to drop (use BYE to leave)")]
            if target.role is Role.AGENT:
                return [self._refuse(c, msg, 403, "the agent cannot be dropped; the agent ends the call")]
            log.info("signaling.participant_dropped", call_id=call.call_id, by=c.user.name, target=target.user)
            if call.record:
                call.record.events.append((self.clock(), f"{target.user} dropped by {c.user.name}"))
                self.records.changed(call.record)
            out: list[Action] = [self._ok(c, msg)]
            if target.conn in self.conns:
                out.append(self._server_request(target.conn, "BYE", call_id=call.call_id,
                                                reason=f"dropped by supervisor {c.user.name}")[0])
            return out + self._leave(call, target, why=f"dropped by {c.user.name}")
        if msg.action == "mute":
            if not acting_on_other and not msg.value and target.muted_by is not None:
                return [self._refuse(c, msg, 403, f"muted by supervisor {target.muted_by}: only they can unmute you")]
            target.muted = msg.value
            target.muted_by = c.user.name if (msg.value and acting_on_other) else None
        else:
            target.held = msg.value
        log.info("signaling.participant_changed", call_id=call.call_id, by=c.user.name, target=target.user,
                 action=msg.action, value=msg.value)
        return [self._ok(c, msg, target=target.user, action=msg.action, value=msg.value),
                UpdateLeg(call.call_id, target.leg, target.routing()), *self._call_state(call)]

    def _set_mode(self, c: Connection, msg: m.Info, call: Call, me: Participant) -> list[Action]:
        if me.role is not Role.SUPERVISOR:
            return [self._refuse(c, msg, 403, "only supervisors change monitoring mode")]
        if msg.mode is None:
            return [self._refuse(c, msg, 400, "missing field 'mode' (monitor, barge or coach)")]
        mode = SupervisorMode(msg.mode)
        refusal = self._mode_refusal(c, call, me, mode)
        if refusal:
            return [self._refuse(c, msg, *refusal, call_id=call.call_id)]
        old, me.mode = me.mode, mode
        if me.record is not None:
            me.record.mode_changes.append((self.clock(), mode.value, me.user))
            self.records.changed(me.record)
        out: list[Action] = []
        if old is SupervisorMode.BARGE and mode is not SupervisorMode.BARGE:
            out += self._undo_mutes(call, me.user)
        log.info("signaling.mode_changed", call_id=call.call_id, supervisor=me.user, old=old.value if old else None,
                 mode=mode.value)
        return [self._ok(c, msg, mode=mode.value, call_id=call.call_id),
                UpdateLeg(call.call_id, me.leg, me.routing()), *out, *self._call_state(call), *self._notify_views()]

    def _undo_mutes(self, call: Call, supervisor: str) -> list[Action]:
        """A party muted by a supervisor is unmuted when that supervisor stops barging or leaves."""
        out: list[Action] = []
        for p in call.participants.values():
            if p.muted_by == supervisor:
                p.muted, p.muted_by = False, None
                out.append(UpdateLeg(call.call_id, p.leg, p.routing()))
                log.info("signaling.participant_changed", call_id=call.call_id, target=p.user, action="mute",
                         value=False, why=f"{supervisor} stopped barging")
        return out

    def _on_refer(self, c: Connection, msg: m.Refer) -> list[Action]:
        call, me, refusal = self._call_for(c, msg)
        if refusal:
            return [refusal]
        assert call is not None and c.user is not None
        if me is None or me.role is not Role.AGENT:
            return [self._refuse(c, msg, 403, "only the call's agent adds a party")]
        target = self.directory.user(msg.target)
        if target is None or target.role == "supervisor":
            return [self._refuse(c, msg, 404, f"no user {msg.target!r} who can join a call")]
        if target.name not in self.online:
            return [self._refuse(c, msg, 480, f"{target.name} is not signed in")]
        if target.name in self.user_call:
            return [self._refuse(c, msg, 486, f"{target.name} is busy on another call")]
        if call.pending is not None:
            return [self._refuse(c, msg, 491, "another invitation on this call is pending")]
        try:
            self.settings.limits.check([(p.role, p.mode) for p in call.participants.values()] + [(Role.PARTY, None)])
        except LimitError as exc:
            return [self._refuse(c, msg, 486, str(exc))]
        conn = self.online[target.name]
        send, cseq = self._server_request(conn, "INVITE", call_id=call.call_id, **{"from": c.user.name},
                                          queue=call.queue, kind="conference")
        call.pending = PendingInvite(call.call_id, target.name, conn, cseq, Role.PARTY,
                                     self.clock() + self.settings.ring_timeout_s, referred_by=c.user.name)
        self._pending[(conn, cseq)] = call.call_id
        self.user_call[target.name] = call.call_id
        self._refresh_idle(target.name)
        log.info("signaling.refer", call_id=call.call_id, by=c.user.name, target=target.name)
        return [self._ok(c, msg, 202, target=target.name), send]

    def _on_ack(self, c: Connection, msg: m.Ack) -> list[Action]:
        return []  # ACK has no response

    def _on_cancel(self, c: Connection, msg: m.Cancel) -> list[Action]:
        call = self.calls.get(msg.call_id)
        assert c.user is not None
        if call is None or call.customer != c.user.name:
            return [self._refuse(c, msg, 481, f"no call {msg.call_id!r} of yours")]
        if call.state != "ringing":
            return [self._refuse(c, msg, 481, "the call is already answered: use BYE")]
        out: list[Action] = [self._ok(c, msg),
                             Send(call.customer_conn, m.response(call.customer_cseq, "INVITE", 487,
                                                                 call_id=call.call_id))]
        if call.pending is not None and call.pending.conn in self.conns:
            out.append(self._server_request(call.pending.conn, "CANCEL", call_id=call.call_id,
                                            reason="caller hung up")[0])
        log.info("signaling.cancelled", call_id=call.call_id, customer=c.user.name)
        return out + self._end_call(call, "customer cancelled", by=c.user.name, notify_customer=False)

    def _on_bye(self, c: Connection, msg: m.Bye) -> list[Action]:
        call, me, refusal = self._call_for(c, msg)
        if refusal:
            return [refusal]
        assert call is not None and c.user is not None
        if me is None:  # the customer hangs up while ringing
            return self._on_cancel(c, m.Cancel(method="CANCEL", cseq=msg.cseq, call_id=msg.call_id))
        return [self._ok(c, msg), *self._leave(call, me, why="hung up"), *self._notify_views()]

    # ------------------------------------------------------------------------------ leaving and ending
    def _leave(self, call: Call, p: Participant, why: str) -> list[Action]:
        if p.role is Role.AGENT:
            return self._end_call(call, f"the agent ended the call ({why})", by=p.user)
        if p.role is Role.CUSTOMER:
            return self._end_call(call, f"the customer hung up ({why})", by=p.user)
        del call.participants[p.user]
        self.user_call.pop(p.user, None)
        self._refresh_idle(p.user)
        now = self.clock()
        out: list[Action] = [RemoveLeg(call.call_id, p.leg)]
        if p.role is Role.SUPERVISOR:
            if p.record is not None:
                self.records.close_monitor(p.record, now, f"supervisor left ({why})")
            out += self._undo_mutes(call, p.user)
            log.info("signaling.monitor_ended", call_id=call.call_id, supervisor=p.user, why=f"left ({why})")
        else:
            log.info("signaling.party_left", call_id=call.call_id, party=p.user, why=why)
        return out + self._call_state(call)

    def _end_call(self, call: Call, reason: str, by: str | None, notify_customer: bool = True) -> list[Action]:
        if call.call_id not in self.calls:
            return []
        now = self.clock()
        call.state = "ended"
        out: list[Action] = []
        if call.pending is not None:
            p = call.pending
            if p.conn in self.conns:
                out.append(self._server_request(p.conn, "CANCEL", call_id=call.call_id, reason=reason)[0])
            self.user_call.pop(p.user, None)
            if p.user in self.agents and self.agents[p.user].call_id == call.call_id:
                self.agents[p.user].call_id = None
            self._refresh_idle(p.user)
            self._clear_pending(call)
        for p in list(call.participants.values()):
            out.append(RemoveLeg(call.call_id, p.leg))
            self.user_call.pop(p.user, None)
            if p.user in self.agents:
                self.agents[p.user].call_id = None
                self.agents[p.user].since = now
            self._refresh_idle(p.user)
            if p.user == by or p.conn not in self.conns:
                continue
            if p.role is Role.SUPERVISOR:
                if p.record is not None:
                    self.records.close_monitor(p.record, now, reason)
                out.append(self._notify(p.conn, "session-ended", call_id=call.call_id, reason=reason))
                log.info("signaling.monitor_ended", call_id=call.call_id, supervisor=p.user, why=reason)
            elif p.role is not Role.CUSTOMER or notify_customer:
                out.append(self._server_request(p.conn, "BYE", call_id=call.call_id, reason=reason)[0])
        for p in call.supervisors():
            if p.user == by and p.record is not None:
                self.records.close_monitor(p.record, now, reason)
        self.user_call.pop(call.customer, None)
        if call.record is not None:
            self.records.close_contact(call.record, now, reason, by)
        del self.calls[call.call_id]
        log.info("signaling.call_ended", call_id=call.call_id, why=reason, by=by)
        return out

    def _user_gone(self, name: str, conn: ConnId, why: str) -> list[Action]:
        call_id = self.user_call.get(name)
        call = self.calls.get(call_id) if call_id else None
        if call is None:
            return []
        if call.pending is not None and call.pending.user == name:
            return self._invite_failed(call, call.pending, 480, f"{name} {why}")
        p = call.participants.get(name)
        if p is not None and p.conn == conn:
            return self._leave(call, p, why=why)
        if call.customer == name and call.state == "ringing":
            return self._end_call(call, f"the customer hung up ({why})", by=name, notify_customer=False)
        return []

    # ------------------------------------------------------------------------------ views
    def _participants(self, call: Call) -> list[dict[str, Any]]:
        return [{"user": p.user, "role": p.role.value, "mode": p.mode.value if p.mode else None,
                 "muted": p.muted, "held": p.held} for p in call.participants.values()]

    def _call_state(self, call: Call) -> list[Action]:
        """Tell every participant who is on the call and in which mode (agents see supervision)."""
        parts = self._participants(call)
        sups = [{"user": p.user, "mode": p.mode.value} for p in call.supervisors() if p.mode]
        out: list[Action] = []
        for p in call.participants.values():
            if p.conn not in self.conns:
                continue
            if p.role is Role.CUSTOMER:  # a customer is never told about supervisors
                visible = [q for q in parts if q["role"] != "supervisor"]
                out.append(self._notify(p.conn, "call-state", call_id=call.call_id, state=call.state,
                                        participants=visible))
            else:
                out.append(self._notify(p.conn, "call-state", call_id=call.call_id, state=call.state,
                                        participants=parts, supervisors=sups))
        return out

    def agents_view(self) -> list[dict[str, Any]]:
        now = self.clock()
        rows = []
        for name, st in sorted(self.agents.items(), key=lambda kv: _natural(kv[0])):
            user = self.directory.user(name)
            call = self.calls.get(st.call_id) if st.call_id else None
            rows.append({
                "agent": name,
                "display_name": user.display_name if user else name,
                "online": name in self.online,
                "state": ("on-call" if call and call.state == "active" else
                          "ringing" if call else st.state if name in self.online else "offline"),
                "availability": st.state,
                "call_id": call.call_id if call else None,
                "queue": call.queue if call else None,
                "customer": call.customer if call else None,
                "call_duration_s": round(now - call.answered, 1) if call and call.answered else None,
                "monitoring_allowed": self.settings.queues[call.queue].monitoring_allowed if call else None,
                "supervisors": [{"user": p.user, "mode": p.mode.value} for p in call.supervisors() if p.mode]
                if call else [],
            })
        return rows

    def calls_view(self) -> list[dict[str, Any]]:
        now = self.clock()
        return [{"call_id": c.call_id, "queue": c.queue, "state": c.state, "customer": c.customer, "agent": c.agent,
                 "duration_s": round(now - c.answered, 1) if c.answered else None,
                 "monitoring_allowed": self.settings.queues[c.queue].monitoring_allowed,
                 "participants": self._participants(c)} for c in self.calls.values()]

    def _notify_views(self) -> list[Action]:
        out: list[Action] = []
        agents = calls = None
        for conn in list(self._subscribers):
            c = self.conns.get(conn)
            if c is None:
                self._subscribers.discard(conn)
                continue
            if "agents" in c.subscriptions:
                agents = agents if agents is not None else self.agents_view()
                out.append(self._notify(c.conn, "agents", agents=agents))
            if "calls" in c.subscriptions:
                calls = calls if calls is not None else self.calls_view()
                out.append(self._notify(c.conn, "calls", calls=calls))
        return out
