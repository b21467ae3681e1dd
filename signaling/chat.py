"""Chat contacts: a customer's chat to a queue, offered to an agent, messages (``MESSAGE``, as in SIP's
RFC 3428) kept in an ordered transcript, supervisors who watch it and may write into it.

Sans-IO like the rest of the core: :class:`ChatDesk` takes the frames the core routes to it and returns
:mod:`actions <.actions>`. Chats have no media legs and do not make a user busy for voice: an agent may
hold up to ``max_chats_per_agent`` chats and a voice call at once; a supervisor may watch several chats.

What each side sees:

- the customer gets the agent's messages and a barging supervisor's, the latter as ``from: "supervisor"``,
  ``display: "Supervisor"`` and never the supervisor's name; no frame to the customer is ever caused by
  a supervisor joining, leaving or changing mode;
- the agent and every watching supervisor get every message, with the writer's name;
- a coaching supervisor's messages reach the agent and the supervisors only (a whisper).

When a chat ends, every callback in ``ChatDesk.on_ended`` is called with the :class:`Chat` (its whole
transcript); the persistent records store hangs its transcript writer there.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from bargein.mixer.roles import Role, SupervisorMode

from . import messages as m
from . import policy
from .actions import Action, ConnId, Send
from .directory import Directory, User
from .model import AgentStatus, Availability, CallState, Connection
from .policy import Refused
from .records import ContactRecord, MonitorRecord, Records
from .settings import Settings

log = structlog.get_logger("bargein.signaling")

SUPERVISOR_DISPLAY = "Supervisor"  # how a supervisor's message is labelled: the team, never the person


@dataclass(frozen=True)
class ChatEntry:
    """One message of a transcript: numbered (``seq`` from 1) and timed (``at``) by the server."""

    seq: int
    at: float
    role: Role
    user: str
    display: str
    text: str
    whisper: bool = False  # a coaching supervisor's: not for the customer

    def full(self) -> dict[str, Any]:
        """As the agent and supervisors see it."""
        return {"seq": self.seq, "at": self.at, "from": self.role.value, "user": self.user,
                "display": self.display, "text": self.text, "whisper": self.whisper or None}

    def for_customer(self) -> dict[str, Any]:
        """As the customer sees it: a supervisor is only ever "Supervisor"."""
        if self.role is Role.SUPERVISOR:
            return {"seq": self.seq, "at": self.at, "from": "supervisor", "display": SUPERVISOR_DISPLAY,
                    "text": self.text}
        return {"seq": self.seq, "at": self.at, "from": self.role.value, "user": self.user,
                "display": self.display, "text": self.text}


@dataclass
class ChatMember:
    user: str
    role: Role
    conn: ConnId
    mode: SupervisorMode | None = None
    record: MonitorRecord | None = None


@dataclass
class ChatOffer:
    """A server INVITE offering a chat to an agent."""

    agent: str
    conn: ConnId
    cseq: int
    deadline: float


@dataclass
class Chat:
    contact_id: str
    queue: str
    customer: str
    customer_conn: ConnId
    customer_cseq: int
    created: float
    state: CallState = CallState.RINGING
    agent: str | None = None
    answered: float | None = None
    ended: float | None = None
    end_reason: str | None = None
    ended_by: str | None = None
    members: dict[str, ChatMember] = field(default_factory=dict)
    transcript: list[ChatEntry] = field(default_factory=list)
    offer: ChatOffer | None = None
    tried_agents: set[str] = field(default_factory=set)
    record: ContactRecord | None = None

    def supervisors(self) -> list[ChatMember]:
        return [p for p in self.members.values() if p.role is Role.SUPERVISOR]

    def roles(self, without: ChatMember | None = None) -> list[tuple[Role, SupervisorMode | None]]:
        return [(p.role, p.mode) for p in self.members.values() if p is not without]

    def summary(self) -> dict[str, Any]:
        """The agents view's entry for this chat."""
        return {"contact_id": self.contact_id, "customer": self.customer, "state": self.state.value,
                "messages": len(self.transcript),
                "supervisors": [{"user": p.user, "mode": p.mode.value} for p in self.supervisors() if p.mode]}

    def as_dict(self) -> dict[str, Any]:
        """The whole contact with its transcript (what a transcript writer stores as JSON)."""
        return {"contact_id": self.contact_id, "channel": "chat", "queue": self.queue, "customer": self.customer,
                "agent": self.agent, "initiated": self.created, "connected": self.answered,
                "disconnected": self.ended, "disconnect_reason": self.end_reason, "ended_by": self.ended_by,
                "transcript": [e.full() for e in self.transcript]}


class ChatDesk:
    """Every live chat; the core hands it chat requests and the responses to its chat offers."""

    def __init__(self, settings: Settings, directory: Directory, conns: Mapping[ConnId, Connection],
                 online: Mapping[str, ConnId], agents: Mapping[str, AgentStatus], records: Records) -> None:
        self.settings, self.directory, self.conns, self.online = settings, directory, conns, online
        self.agents, self.records = agents, records
        self.chats: dict[str, Chat] = {}
        self.on_ended: list[Callable[[Chat], None]] = []
        self._offers: dict[tuple[ConnId, int], str] = {}  # (agent conn, server cseq) -> contact id
        self._last_offered: dict[str, float] = {}
        self._ids = itertools.count(1)
        self.now = 0.0

    # ------------------------------------------------------------------ queries
    def __contains__(self, contact_id: object) -> bool:
        return contact_id in self.chats

    def of_agent(self, agent: str) -> list[Chat]:
        """Live chats the agent is in or being offered, oldest first."""
        return [c for c in self.chats.values()
                if c.agent == agent or (c.offer is not None and c.offer.agent == agent)]

    def next_deadline(self) -> float | None:
        return min((c.offer.deadline for c in self.chats.values() if c.offer is not None), default=None)

    # ------------------------------------------------------------------ helpers
    def _send(self, conn: ConnId, method: str, **fields: Any) -> list[Action]:
        c = self.conns.get(conn)
        return [c.request(method, **fields)] if c is not None else []

    def _changed(self, rec: ContactRecord | MonitorRecord) -> None:
        """Tell the records of a change made in place (a persistent store listens, where there is one)."""
        changed = getattr(self.records, "changed", None)  # absent from the in-memory-only Records
        if changed is not None:
            changed(rec)

    def _display(self, name: str) -> str:
        u = self.directory.user(name)
        return (u.display_name or name) if u else name

    def _chat(self, contact_id: str) -> Chat:
        chat = self.chats.get(contact_id)
        if chat is None:
            raise Refused(481, f"no live chat {contact_id!r}")
        return chat

    def _pick(self, chat: Chat) -> str | None:
        """The available agent of the queue with the fewest chats (below the limit), not offered this one
        yet; among equals, the one offered a chat longest ago."""
        staffed = self.settings.queues[chat.queue].agents
        best: tuple[int, float, str] | None = None
        for name, st in self.agents.items():
            if name not in self.online or st.state is not Availability.AVAILABLE or name in chat.tried_agents:
                continue
            if staffed is not None and name not in staffed:
                continue
            user = self.directory.user(name)
            if user is None or (user.queues is not None and chat.queue not in user.queues):
                continue
            load = len(self.of_agent(name))
            if load >= self.settings.max_chats_per_agent:
                continue
            key = (load, self._last_offered.get(name, 0.0), name)
            if best is None or key < best:
                best = key
        return best[2] if best else None

    def _offer(self, chat: Chat, agent: str) -> list[Action]:
        conn = self.online[agent]
        invite = self.conns[conn].request("INVITE", call_id=chat.contact_id, contact_id=chat.contact_id,
                                          channel="chat", kind="queue", queue=chat.queue,
                                          **{"from": chat.customer})
        chat.offer = ChatOffer(agent, conn, invite.message["cseq"], self.now + self.settings.ring_timeout_s)
        chat.tried_agents.add(agent)
        self._offers[(conn, chat.offer.cseq)] = chat.contact_id
        self._last_offered[agent] = self.now
        log.info("signaling.chat_offered", contact_id=chat.contact_id, agent=agent)
        return [invite, Send(chat.customer_conn, m.response(chat.customer_cseq, "INVITE", 180,
                                                            contact_id=chat.contact_id, call_id=chat.contact_id,
                                                            agent=agent))]

    def _withdraw(self, chat: Chat, reason: str | None) -> list[Action]:
        """Take back the pending offer (with a CANCEL giving ``reason``, if set)."""
        o = chat.offer
        if o is None:
            return []
        chat.offer = None
        self._offers.pop((o.conn, o.cseq), None)
        return self._send(o.conn, "CANCEL", call_id=chat.contact_id, contact_id=chat.contact_id,
                          reason=reason) if reason else []

    def _next_agent(self, chat: Chat, status: int, why: str) -> list[Action]:
        nxt = self._pick(chat)
        if nxt is not None:
            return self._offer(chat, nxt)
        out: list[Action] = [Send(chat.customer_conn, m.response(
            chat.customer_cseq, "INVITE", 408 if status == 408 else 480,
            f"no agent took the chat in queue {chat.queue!r}", contact_id=chat.contact_id, call_id=chat.contact_id))]
        return out + self._end(chat, f"no agent took the chat ({why})", by=None, tell_customer=False)

    def _fan_out(self, chat: Chat, entry: ChatEntry, skip: str) -> list[Action]:
        """The new message to every member but its writer."""
        out: list[Action] = []
        for p in chat.members.values():
            if p.user == skip:
                continue
            if p.role is Role.CUSTOMER:
                if entry.whisper:
                    continue
                body = entry.for_customer()
            else:
                body = entry.full()
            out += self._send(p.conn, "MESSAGE", contact_id=chat.contact_id, **body)
        return out

    def _chat_state(self, chat: Chat) -> list[Action]:
        """Tell the agent and supervisors who watches (never the customer)."""
        sups = [{"user": p.user, "mode": p.mode.value} for p in chat.supervisors() if p.mode]
        out: list[Action] = []
        for p in chat.members.values():
            if p.role is not Role.CUSTOMER:
                out += self._send(p.conn, "NOTIFY", event="chat-state", contact_id=chat.contact_id,
                                  state=chat.state.value, agent=chat.agent, customer=chat.customer, supervisors=sups)
        return out

    # ------------------------------------------------------------------ requests
    def start(self, c: Connection, msg: m.Invite, queue: str, perms: set[str]) -> list[Action]:
        """A customer's ``INVITE`` with ``channel: "chat"`` to ``queue:<name>``."""
        policy.may_call_queue(c.me, perms, queue, self.settings)
        if msg.sdp is not None:
            raise Refused(400, "field 'sdp': a chat has no media")
        mine = next((ch.contact_id for ch in self.chats.values() if ch.customer == c.me.name), None)
        if mine is not None:  # one live chat per customer: more would only take agents from others
            raise Refused(486, f"you already have chat {mine} open")
        contact_id = f"chat-{next(self._ids)}"
        chat = Chat(contact_id, queue, c.me.name, c.conn, msg.cseq, self.now)
        agent = self._pick(chat)
        if agent is None:
            raise Refused(480, f"no agent available for a chat in queue {queue!r}")
        chat.record = self.records.open_contact(contact_id, queue, c.me.name, self.now, channel="chat")
        chat.record.events.append((self.now, "channel chat"))
        chat.members[c.me.name] = ChatMember(c.me.name, Role.CUSTOMER, c.conn)
        self.chats[contact_id] = chat
        log.info("signaling.chat_created", contact_id=contact_id, queue=queue, customer=c.me.name)
        return [Send(c.conn, m.response(msg.cseq, "INVITE", 100, contact_id=contact_id, call_id=contact_id)),
                *self._offer(chat, agent)]

    def owns(self, conn: ConnId, cseq: int) -> bool:
        return (conn, cseq) in self._offers

    def answered(self, c: Connection, msg: m.Response) -> list[Action]:
        """The agent's response to a chat offer."""
        chat = self.chats.get(self._offers.get((c.conn, msg.cseq), ""))
        if chat is None or chat.offer is None or not m.is_final(msg.status):
            return []
        o = chat.offer
        self._withdraw(chat, None)
        if msg.status >= 300:
            log.info("signaling.chat_declined", contact_id=chat.contact_id, agent=o.agent, status=msg.status)
            return self._next_agent(chat, msg.status, f"{o.agent} declined ({msg.status})")
        chat.state, chat.agent, chat.answered = CallState.ACTIVE, o.agent, self.now
        chat.members[o.agent] = ChatMember(o.agent, Role.AGENT, c.conn)
        if chat.record is not None:
            chat.record.agent, chat.record.answered = o.agent, self.now
            self._changed(chat.record)
        log.info("signaling.chat_answered", contact_id=chat.contact_id, agent=o.agent, customer=chat.customer)
        # the ACK carries what the customer wrote while waiting
        return [*self._send(c.conn, "ACK", call_id=chat.contact_id, contact_id=chat.contact_id,
                            transcript=[e.full() for e in chat.transcript]),
                Send(chat.customer_conn, m.response(chat.customer_cseq, "INVITE", 200, contact_id=chat.contact_id,
                                                    call_id=chat.contact_id, agent=o.agent,
                                                    display=self._display(o.agent))),
                *self._chat_state(chat)]

    def message(self, c: Connection, msg: m.ChatMessage) -> list[Action]:
        chat = self._chat(msg.contact_id)
        me = chat.members.get(c.me.name)
        if me is None or me.conn != c.conn:
            raise Refused(403, f"you are not in chat {msg.contact_id!r}")
        if me.role is Role.SUPERVISOR and me.mode is SupervisorMode.MONITOR:
            raise Refused(403, "you are monitoring read-only: switch to barge (INFO action=mode) to write")
        display = SUPERVISOR_DISPLAY if me.role is Role.SUPERVISOR else self._display(me.user)
        entry = ChatEntry(len(chat.transcript) + 1, self.now, me.role, me.user, display, msg.text,
                          whisper=me.mode is SupervisorMode.COACH)
        chat.transcript.append(entry)
        log.info("signaling.chat_message", contact_id=chat.contact_id, seq=entry.seq, role=me.role.value,
                 user=me.user, chars=len(msg.text))
        return [Send(c.conn, m.response(msg.cseq, "MESSAGE", 200, contact_id=chat.contact_id, seq=entry.seq,
                                        at=entry.at)),
                *self._fan_out(chat, entry, skip=me.user)]

    def join(self, c: Connection, msg: m.Invite, contact_id: str, perms: set[str]) -> list[Action]:
        """A supervisor's ``INVITE`` to ``chat:<contact_id>``: the transcript so far, then every message live."""
        policy.require(perms, "realtime_monitor", c.me)
        chat = self.chats.get(contact_id)
        if chat is None:
            raise Refused(404, f"no live chat {contact_id!r}")
        if chat.state is not CallState.ACTIVE:
            raise Refused(480, f"chat {contact_id} is not answered yet")
        if not self.settings.queues[chat.queue].monitoring_allowed:
            raise Refused(403, f"monitoring is not allowed for contacts in queue {chat.queue!r}")
        if c.me.name in chat.members:
            raise Refused(486, f"you are already in chat {contact_id}")
        mode = SupervisorMode(msg.mode)
        self._may_set_mode(c.me, perms, chat, None, mode)
        sup = ChatMember(c.me.name, Role.SUPERVISOR, c.conn, mode=mode)
        sup.record = self.records.open_monitor(contact_id, c.me.name, mode.value, self.now)
        chat.members[sup.user] = sup
        log.info("signaling.chat_monitor_started", contact_id=contact_id, supervisor=sup.user, mode=mode.value)
        return [Send(c.conn, m.response(msg.cseq, "INVITE", 200, contact_id=contact_id, call_id=contact_id,
                                        channel="chat", mode=mode.value, session_id=sup.record.session_id,
                                        queue=chat.queue, agent=chat.agent, customer=chat.customer,
                                        transcript=[e.full() for e in chat.transcript])),
                *self._chat_state(chat)]

    def _may_set_mode(self, user: User, perms: set[str], chat: Chat, sup: ChatMember | None,
                      mode: SupervisorMode) -> None:
        if mode is not SupervisorMode.MONITOR:
            policy.require(perms, "realtime_barge", user, f": {mode.value} refused, still read-only")
            if not self.settings.enhanced_monitoring:
                raise Refused(403, f"enhanced monitoring is off on this instance: {mode.value} is disabled")
        policy.within_limits(self.settings.limits, chat.roles(without=sup) + [(Role.SUPERVISOR, mode)])

    def info(self, c: Connection, msg: m.Info, perms: set[str]) -> list[Action]:
        """``INFO action=mode`` from a watching supervisor (no other INFO applies to a chat)."""
        chat = self._chat(msg.call_id)
        me = chat.members.get(c.me.name)
        if me is None:
            raise Refused(403, f"you are not in chat {msg.call_id!r}")
        if msg.action != "mode":
            raise Refused(400, f"field 'action': {msg.action} does not apply to a chat")
        mode = policy.may_change_mode(me, msg.mode)  # type: ignore[arg-type]
        self._may_set_mode(c.me, perms, chat, me, mode)
        me.mode = mode
        if me.record is not None:
            me.record.mode_changes.append((self.now, mode.value, me.user))
            self._changed(me.record)
        log.info("signaling.chat_mode", contact_id=chat.contact_id, supervisor=me.user, mode=mode.value)
        return [Send(c.conn, m.response(msg.cseq, "INFO", 200, mode=mode.value, call_id=chat.contact_id,
                                        contact_id=chat.contact_id)), *self._chat_state(chat)]

    def bye(self, c: Connection, msg: m.Bye | m.Cancel) -> list[Action]:
        chat = self._chat(msg.call_id)
        me = chat.members.get(c.me.name)
        if me is None:
            raise Refused(403, f"you are not in chat {msg.call_id!r}")
        ok = Send(c.conn, m.response(msg.cseq, msg.method, 200, contact_id=chat.contact_id))
        if me.role is Role.SUPERVISOR:
            return [ok, *self._leave(chat, me, "left")]
        who = "the agent" if me.role is Role.AGENT else "the customer"
        out: list[Action] = [ok]
        if chat.state is CallState.RINGING:  # the customer gives up waiting
            out.append(Send(chat.customer_conn, m.response(chat.customer_cseq, "INVITE", 487,
                                                           contact_id=chat.contact_id, call_id=chat.contact_id)))
        return out + self._end(chat, f"{who} ended the chat", by=me.user)

    # ------------------------------------------------------------------ leaving and ending
    def _leave(self, chat: Chat, sup: ChatMember, why: str) -> list[Action]:
        del chat.members[sup.user]
        if sup.record is not None:
            self.records.close_monitor(sup.record, self.now, f"supervisor {why}")
        log.info("signaling.chat_monitor_ended", contact_id=chat.contact_id, supervisor=sup.user, why=why)
        return self._chat_state(chat)

    def _end(self, chat: Chat, reason: str, by: str | None, tell_customer: bool = True) -> list[Action]:
        """End the chat: BYE to the customer and agent (not ``by``), NOTIFY session-ended to supervisors."""
        if self.chats.pop(chat.contact_id, None) is None:
            return []
        chat.state, chat.ended, chat.end_reason, chat.ended_by = CallState.ENDED, self.now, reason, by
        out = self._withdraw(chat, reason)
        for p in chat.members.values():
            if p.role is Role.SUPERVISOR:
                if p.record is not None:
                    self.records.close_monitor(p.record, self.now, reason)
                out += self._send(p.conn, "NOTIFY", event="session-ended", call_id=chat.contact_id,
                                  contact_id=chat.contact_id, reason=reason)
            elif p.user != by and (p.role is not Role.CUSTOMER or tell_customer):
                out += self._send(p.conn, "BYE", call_id=chat.contact_id, contact_id=chat.contact_id, reason=reason)
        log.info("signaling.chat_ended", contact_id=chat.contact_id, why=reason, by=by,
                 messages=len(chat.transcript))
        for hook in self.on_ended:  # before the contact record closes: a store may still look it up
            try:
                hook(chat)
            except Exception:  # a failing store must not take the chat's ending with it
                log.exception("signaling.chat_ended_hook_failed", contact_id=chat.contact_id)
        if chat.record is not None:
            self.records.close_contact(chat.record, self.now, reason, by)
        return out

    def user_gone(self, name: str, conn: ConnId, why: str) -> list[Action]:
        """``name``'s connection ``conn`` closed: end their chats, withdraw offers to them, drop their watching."""
        out: list[Action] = []
        for chat in list(self.chats.values()):
            if chat.offer is not None and chat.offer.conn == conn:
                self._withdraw(chat, None)
                out += self._next_agent(chat, 480, f"{name} {why}")
                continue
            p = chat.members.get(name)
            if p is None or p.conn != conn:
                continue
            if p.role is Role.SUPERVISOR:
                out += self._leave(chat, p, why)
            else:
                who = "the agent" if p.role is Role.AGENT else "the customer"
                out += self._end(chat, f"{who} left the chat ({why})", by=name)
        return out

    def poll(self) -> list[Action]:
        """Offers not answered in ``ring_timeout_s`` go to the next agent."""
        out: list[Action] = []
        for chat in list(self.chats.values()):
            o = chat.offer
            if o is not None and self.now >= o.deadline:
                log.info("signaling.chat_offer_timeout", contact_id=chat.contact_id, agent=o.agent)
                out += self._withdraw(chat, f"not accepted in {self.settings.ring_timeout_s:g} s")
                out += self._next_agent(chat, 408, f"{o.agent} did not accept")
        return out
