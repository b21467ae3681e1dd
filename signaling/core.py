"""The sans-IO signaling core: request dispatch and the call lifecycle. No sockets, no asyncio.

Feed it what happened and when (``now`` in seconds; read from ``clock`` when omitted); it returns the
:mod:`actions <.actions>` to take, in order (frames to send, mixer legs to add/update/remove, transports to close):
``connect(conn)``, ``handle(conn, frame)``, ``disconnect(conn)``, ``media_failed(leg)`` (freed like a BYE),
and ``poll()`` at ``next_deadline()`` (ring timeouts). Around it: :mod:`.sessions` (connections, sign-in),
:mod:`.policy` (who may do what), :mod:`.acd` (agents, ringing), :mod:`.controls` (modes, mute, hold),
:mod:`.chat` (chat contacts) and :mod:`.views` (views, call-state NOTIFYs); who hears whom: ``mixer.routing``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import structlog
from bargein.mixer.roles import Role, SupervisorMode

from . import controls, policy, views
from . import messages as m
from .acd import Acd
from .actions import Action, AddLeg, CloseConnection, ConnId, MeterCall, RemoveLeg, Send, UpdateLeg
from .chat import ChatDesk
from .directory import Directory, demo_directory
from .media_events import MediaEvents
from .model import Call, CallState, Connection, Participant, PendingInvite
from .pending import Invitations
from .policy import Refused
from .records import Records
from .sessions import Sessions
from .settings import Settings

__all__ = ["Action", "AddLeg", "CloseConnection", "MeterCall", "RemoveLeg", "Send", "SignalingCore", "UpdateLeg"]

log = structlog.get_logger("bargein.signaling")


class SignalingCore(MediaEvents):
    def __init__(self, settings: Settings | None = None, directory: Directory | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or Settings()
        self.directory = directory or demo_directory()
        self.clock = clock
        self.now = clock()  # the time of the event being handled
        self.sessions = Sessions(self.settings, self.directory)
        self.conns, self.online = self.sessions.conns, self.sessions.online
        self.acd = Acd(self.settings, self.directory)
        self.agents = self.acd.agents
        self.calls: dict[str, Call] = {}
        self.user_call: dict[str, str] = {}  # user -> call they are in (or ringing for)
        self.records = Records()
        self.subscribers = views.Subscribers()
        self.invitations = Invitations()
        self._ring_after: dict[str, Call] = {}  # a customer's leg whose SDP answer its call waits for to ring
        self.chat = ChatDesk(self.settings, self.directory, self.conns, self.online, self.agents, self.records)
        self._ids = itertools.count(1)
        self._legs = itertools.count(1)
        self._handlers: dict[type, Callable[[Connection, Any], list[Action]]] = {
            m.Register: self._on_register, m.Options: self._on_options, m.Publish: self._on_publish,
            m.Subscribe: self._on_subscribe, m.Invite: self._on_invite, m.Info: self._on_info,
            m.Refer: self._on_refer, m.Ack: lambda c, msg: [],  # ACK has no response
            m.Cancel: self._on_cancel, m.Bye: self._on_bye,
            m.ChatMessage: self._on_message,
        }

    def _at(self, now: float | None) -> float:
        self.now = self.chat.now = self.clock() if now is None else now
        return self.now

    # ------------------------------------------------------------------------------ transport
    def connect(self, conn: ConnId, now: float | None = None, remote: str | None = None) -> list[Action]:
        """A transport opened; ``remote`` (its address) keys the limits that outlive connections."""
        return [] if self.sessions.open(conn, self._at(now), remote) else [CloseConnection(conn, "server full")]

    def disconnect(self, conn: ConnId, now: float | None = None) -> list[Action]:
        self._at(now)
        c, offline = self.sessions.close(conn)
        if c is None or c.user is None:
            return []
        name = c.me.name
        if offline:
            self.acd.signed_out(name)
        log.info("signaling.disconnected", user=name, conn=conn)
        return (self._user_gone(name, conn, why="disconnected") + self.chat.user_gone(name, conn, "disconnected")
                + self._notify_views())

    def handle(self, conn: ConnId, raw: str | bytes | dict[str, Any], now: float | None = None) -> list[Action]:
        c = self.conns.get(conn)
        if c is None:
            return []
        self._at(now)
        try:
            msg = m.parse(raw)
        except m.ParseError as exc:
            if self.sessions.rate_limited(c, self.now):
                return [self.sessions.too_many(c, exc.cseq, exc.method)]
            log.info("signaling.bad_message", conn=conn, user=c.user.name if c.user else None,
                     status=exc.status, why=exc.reason)
            return [Send(conn, m.response(exc.cseq, exc.method, exc.status, exc.reason, **exc.fields))]
        if self.sessions.rate_limited(c, self.now):
            return [self.sessions.too_many(c, msg.cseq, getattr(msg, "method", None))]
        try:
            if isinstance(msg, m.Response):
                return self._on_response(c, msg)
            self.sessions.check_request(c, msg.cseq, msg.method)
            return self._handlers[type(msg)](c, msg)
        except Refused as r:
            log.info("signaling.refused", user=c.user.name if c.user else None, conn=conn, method=msg.method,
                     status=r.status, why=r.reason)
            return [Send(conn, m.response(msg.cseq, msg.method, r.status, r.reason))]
        except Exception:  # a bug must cost one request, not the connection or the server
            log.exception("signaling.internal_error", conn=conn, method=msg.method)
            return [] if isinstance(msg, m.Response) else [
                Send(conn, m.response(msg.cseq, msg.method, 500, "internal error; the server is still up"))]

    def next_deadline(self) -> float | None:
        """When :meth:`poll` next has something to do (the earliest ring timeout), or None."""
        return min((d for d in (self.invitations.next_deadline(), self.chat.next_deadline()) if d is not None),
                   default=None)

    def poll(self, now: float | None = None) -> list[Action]:
        """Expire unanswered INVITEs (ring timeout)."""
        out: list[Action] = []
        for call in self.invitations.due(self._at(now)):
            if (p := call.pending) is not None and self.now >= p.deadline:  # still the same, unanswered
                log.info("signaling.ring_timeout", call_id=call.call_id, user=p.user)
                out += self._invite_failed(call, p, 408, f"{p.user} did not answer in {self.settings.ring_timeout_s:g} s",
                                           cancel=True)
        chats = self.chat.poll()
        return out + chats + (self._notify_views() if chats else [])

    # ------------------------------------------------------------------------------ helpers
    def _ok(self, c: Connection, msg: Any, status: int = 200, **fields: Any) -> Send:
        return Send(c.conn, m.response(msg.cseq, msg.method, status, **fields))

    def _request(self, conn: ConnId, method: str, **fields: Any) -> Send:
        """A server request to ``conn`` (cseq 0 when the connection is gone: the adapter drops it)."""
        c = self.conns.get(conn)
        return c.request(method, **fields) if c else Send(conn, m.request(method, 0, **fields))

    def _new_leg(self) -> str:
        return f"leg-{next(self._legs)}"

    def _refresh_idle(self, name: str) -> None:
        self.acd.refresh(name, free=name in self.online and name not in self.user_call)

    def _release_pending(self, call: Call, cancel: str | None) -> list[Action]:
        """Withdraw the call's pending INVITE (with a CANCEL giving ``cancel`` as the reason, if set)."""
        p = self.invitations.clear(call)
        if p is None:
            return []
        self.user_call.pop(p.user, None)
        self.acd.released(p.user, call.call_id)
        self._refresh_idle(p.user)
        if cancel is None or p.conn not in self.conns:
            return []
        return [self._request(p.conn, "CANCEL", call_id=call.call_id, reason=cancel)]

    def agents_view(self, now: float | None = None) -> list[dict[str, Any]]:
        now = self.clock() if now is None else now
        return views.agents_view(self.agents, self.calls, self.online, self.directory, self.settings, now,
                                 chats=self.chat.of_agent)

    def calls_view(self, now: float | None = None) -> list[dict[str, Any]]:
        return views.calls_view(self.calls, self.settings, self.clock() if now is None else now)

    def _notify_views(self) -> list[Action]:
        return self.subscribers.fan_out(self.conns, lambda: self.agents_view(self.now),
                                        lambda: self.calls_view(self.now))

    # ------------------------------------------------------------------------------ requests
    def _on_register(self, c: Connection, msg: m.Register) -> list[Action]:
        user, old = self.sessions.sign_in(c, msg.token, self.now)
        out: list[Action] = []
        if old is not None:  # signed in elsewhere: the newest session wins
            out += [*self.disconnect(old, self.now), CloseConnection(old, "signed in from another connection")]
        self.sessions.signed_in(c, user)
        if user.role == "agent":
            self.acd.add(user.name)
            self.agents[user.name].since = self.now
        self._refresh_idle(user.name)
        st = self.agents.get(user.name)
        out.append(self._ok(c, msg, **views.signed_in(user, self.directory, self.settings, st, self.now)))
        return out + self._notify_views()

    def _on_options(self, c: Connection, msg: m.Options) -> list[Action]:
        return [self._ok(c, msg, allow=sorted(m.METHODS))]

    def _on_publish(self, c: Connection, msg: m.Publish) -> list[Action]:
        self.acd.publish(c.me.name, msg.state, self.now)
        self._refresh_idle(c.me.name)
        return [self._ok(c, msg, state=msg.state), *self._notify_views()]

    def _on_subscribe(self, c: Connection, msg: m.Subscribe) -> list[Action]:
        policy.require(self.directory.permissions(c.me), "access_metrics", c.me)
        view = self.subscribers.add(c, msg.event, self.agents_view if msg.event == "agents" else self.calls_view)
        return [self._ok(c, msg, event=msg.event), view]

    def _on_invite(self, c: Connection, msg: m.Invite) -> list[Action]:
        kind, _, target = msg.to.partition(":")
        if kind == "queue" and msg.channel == "chat":
            return self.chat.start(c, msg, target, self.directory.permissions(c.me)) + self._notify_views()
        if kind == "chat":
            return self.chat.join(c, msg, target, self.directory.permissions(c.me)) + self._notify_views()
        return self._invite_queue(c, msg, target) if kind == "queue" else self._invite_monitor(c, msg, target)

    def _invite_queue(self, c: Connection, msg: m.Invite, queue: str) -> list[Action]:
        policy.may_call_queue(c.me, self.directory.permissions(c.me), queue, self.settings)
        policy.not_busy(self.user_call, c.me.name)
        call_id = f"call-{next(self._ids)}"
        call = Call(call_id, queue, c.me.name, c.conn, msg.cseq, self.now)
        call.record = self.records.open_contact(call_id, queue, c.me.name, self.now)
        self.user_call[c.me.name] = call_id  # busy before an agent is picked: an agent who calls is not idle
        self._refresh_idle(c.me.name)
        agent = self.acd.pick(call)
        if agent is None:
            del self.user_call[c.me.name]
            self._refresh_idle(c.me.name)
            self.records.close_contact(call.record, self.now, "no agent available", None)
            raise Refused(480, f"no agent available in queue {queue!r}")
        self.calls[call_id] = call
        cust = call.join(Participant(c.me.name, Role.CUSTOMER, self._new_leg(), c.conn))
        log.info("signaling.call_created", call_id=call_id, queue=queue, customer=c.me.name)
        out: list[Action] = [AddLeg(call_id, cust.leg, cust.routing(), c.conn, cust.user),
                             Send(c.conn, m.response(msg.cseq, "INVITE", 100, call_id=call_id))]
        if msg.sdp is None:
            return out + self._ring(call, agent)
        # early media: the SDP answer travels in 183 so audio flows as soon as the agent answers; the agent is
        # rung once it is answered (media_answered), so a 488 is never followed by 180 nor an agent rung
        self._ring_after[cust.leg] = call
        return [*out, Send(c.conn, m.response(msg.cseq, "INVITE", 183, call_id=call_id, leg=cust.leg),
                           media_leg=cust.leg, media_offer=msg.sdp)]

    def _ring(self, call: Call, agent: str) -> list[Action]:
        invite = self._invite(call, agent, Role.AGENT, None, kind="queue")
        return [invite, *self.acd.ring(call, agent), *self._notify_views()]

    def _invite(self, call: Call, user: str, role: Role, referred_by: str | None, **fields: Any) -> Send:
        """Offer ``call`` to ``user`` with a server INVITE; it stays pending until answered or timed out."""
        invite = self.invitations.offer(call, user, role, self.conns[self.online[user]],
                                        self.now + self.settings.ring_timeout_s, referred_by, **fields)
        self.user_call[user] = call.call_id
        self._refresh_idle(user)
        return invite

    def _on_response(self, c: Connection, msg: m.Response) -> list[Action]:
        if c.user is None or msg.method != "INVITE":
            return []  # responses to our BYE / NOTIFY / MESSAGE need no action
        if self.chat.owns(c.conn, msg.cseq):
            out = self.chat.answered(c, msg)
            return out + self._notify_views() if out else out
        call = self.invitations.answered(c.conn, msg.cseq)
        if call is None or call.pending is None:
            log.info("signaling.stray_response", user=c.me.name, cseq=msg.cseq, status=msg.status)
            return []
        p = call.pending
        if not m.is_final(msg.status):
            return []
        if msg.status >= 300:
            return self._invite_failed(call, p, msg.status, f"{p.user} declined ({msg.status})")
        self.invitations.clear(call)
        part = Participant(p.user, p.role, self._new_leg(), c.conn)
        try:
            policy.within_limits(self.settings.limits, call.roles() + [(part.role, None)])
        except Refused as exc:
            self.user_call.pop(p.user, None)
            self._refresh_idle(p.user)
            return [c.request("BYE", call_id=call.call_id, reason=exc.reason)]
        call.join(part)
        out: list[Action] = [AddLeg(call.call_id, part.leg, part.routing(), c.conn, p.user)]
        ack = c.request("ACK", call_id=call.call_id, leg=part.leg)
        out.append(Send(ack.conn, ack.message, media_leg=part.leg if msg.sdp else None, media_offer=msg.sdp))
        assert call.record is not None
        if p.role is Role.AGENT:
            call.state, call.agent, call.answered = CallState.ACTIVE, p.user, self.now
            call.record.agent, call.record.answered = p.user, self.now
            self.records.changed(call.record)
            log.info("signaling.call_answered", call_id=call.call_id, agent=p.user, customer=call.customer)
            out.append(Send(call.customer_conn, m.response(call.customer_cseq, "INVITE", 200, call_id=call.call_id,
                                                           agent=p.user)))
        else:
            call.record.parties.append(p.user)
            self.records.changed(call.record)
            log.info("signaling.party_joined", call_id=call.call_id, party=p.user, referred_by=p.referred_by)
        return out + views.call_state(call, self.conns) + self._notify_views()

    def _invite_failed(self, call: Call, p: PendingInvite, status: int, why: str, cancel: bool = False) -> list[Action]:
        out = self._release_pending(call, why if cancel else None)
        if p.role is Role.PARTY:  # a REFER that failed: tell the agent, the call goes on
            if call.agent and call.agent in self.online:
                out.append(self._request(self.online[call.agent], "NOTIFY", event="refer-failed",
                                         call_id=call.call_id, target=p.user, status=status, reason=why))
            return out + self._notify_views()
        nxt = self.acd.pick(call)
        if nxt is not None:
            return out + self._ring(call, nxt)
        code = 408 if status == 408 else 480
        out.append(Send(call.customer_conn, m.response(call.customer_cseq, "INVITE", code,
                                                       f"no agent answered in queue {call.queue!r}",
                                                       call_id=call.call_id)))
        return out + self._end_call(call, "no agent answered", by=None, notify_customer=False)

    def _invite_monitor(self, c: Connection, msg: m.Invite, call_id: str) -> list[Action]:
        perms = self.directory.permissions(c.me)
        call = policy.may_monitor(c.me, perms, self.settings, self.calls.get(call_id), call_id)
        policy.not_busy(self.user_call, c.me.name, "you are already on call {}; leave it first")
        mode = SupervisorMode(msg.mode)
        policy.may_set_mode(c.me, perms, self.settings, call, None, mode)
        sup = controls.join_supervisor(call, c.me.name, c.conn, self._new_leg(), mode, self.records, self.now)
        self.user_call[sup.user] = call_id
        out: list[Action] = [AddLeg(call_id, sup.leg, sup.routing(), c.conn, sup.user), MeterCall(call_id, on=True),
                             Send(c.conn, m.response(msg.cseq, "INVITE", 200, call_id=call_id, mode=mode.value,
                                                     leg=sup.leg, session_id=sup.record.session_id,
                                                     participants=views.participants(call)),
                                  media_leg=sup.leg if msg.sdp else None, media_offer=msg.sdp)]
        return out + views.call_state(call, self.conns) + self._notify_views()

    def _on_info(self, c: Connection, msg: m.Info) -> list[Action]:
        if msg.call_id in self.chat:
            return self.chat.info(c, msg, self.directory.permissions(c.me)) + self._notify_views()
        call, me = policy.member(self.calls.get(msg.call_id), msg.call_id, c.me.name)
        if me is None:
            raise Refused(481, "the call is not answered yet")
        if msg.action == "mode":
            return self._set_mode(c, msg, call, me)
        target = call.participants.get(msg.target) if msg.target else me
        if target is not None and me.caller_side and target.role is Role.SUPERVISOR:
            target = None  # a customer cannot tell a supervisor from nobody
        if target is None:
            raise Refused(404, f"no participant {msg.target!r} in call {call.call_id}")
        policy.may_act_on(me, target, msg.action, msg.value)
        if msg.action == "drop":
            bye = controls.drop(call, me, target, self.conns.get(target.conn), self.now)
            if call.record:
                self.records.changed(call.record)
            if target.role is Role.CUSTOMER:  # the call ends with its customer; the agent is told who
                return [self._ok(c, msg), *bye,
                        *self._end_call(call, f"supervisor {c.me.name} dropped the customer", by=target.user)]
            return [self._ok(c, msg), *bye, *self._leave(call, target, why=f"dropped by {c.me.name}")]
        return [self._ok(c, msg, target=target.user, action=msg.action, value=msg.value),
                *controls.set_flag(call, me, target, msg.action, msg.value), *views.call_state(call, self.conns),
                *self._notify_views()]  # the agents view shows who is muted or on hold

    def _set_mode(self, c: Connection, msg: m.Info, call: Call, me: Participant) -> list[Action]:
        mode = policy.may_change_mode(me, msg.mode)
        policy.may_set_mode(c.me, self.directory.permissions(c.me), self.settings, call, me, mode)
        changes = controls.set_mode(call, me, mode, self.now)
        if me.record is not None:
            self.records.changed(me.record)  # persisted by the server's contact log
        return [self._ok(c, msg, mode=mode.value, call_id=call.call_id), *changes,
                *views.call_state(call, self.conns), *self._notify_views()]

    def _on_refer(self, c: Connection, msg: m.Refer) -> list[Action]:
        call, me = policy.member(self.calls.get(msg.call_id), msg.call_id, c.me.name)
        target = policy.may_refer(me, self.directory.user(msg.target), msg.target, self.online, self.user_call,
                                  call, self.settings.limits)
        invite = self._invite(call, target.name, Role.PARTY, c.me.name, kind="conference")
        log.info("signaling.refer", call_id=call.call_id, by=c.me.name, target=target.name)
        return [self._ok(c, msg, 202, target=target.name), invite]

    def _on_message(self, c: Connection, msg: m.ChatMessage) -> list[Action]:
        return self.chat.message(c, msg)

    def _on_cancel(self, c: Connection, msg: m.Cancel | m.Bye) -> list[Action]:
        if msg.call_id in self.chat:
            return self.chat.bye(c, msg) + self._notify_views()
        call = policy.may_cancel(self.calls.get(msg.call_id), msg.call_id, c.me.name)
        out: list[Action] = [Send(c.conn, m.response(msg.cseq, "CANCEL", 200)),
                             Send(call.customer_conn, m.response(call.customer_cseq, "INVITE", 487,
                                                                 call_id=call.call_id))]
        if call.pending is not None and call.pending.conn in self.conns:
            out.append(self._request(call.pending.conn, "CANCEL", call_id=call.call_id, reason="caller hung up"))
        log.info("signaling.cancelled", call_id=call.call_id, customer=c.me.name)
        return out + self._end_call(call, "customer cancelled", by=c.me.name, notify_customer=False)

    def _on_bye(self, c: Connection, msg: m.Bye) -> list[Action]:
        if msg.call_id in self.chat:
            return self.chat.bye(c, msg) + self._notify_views()
        call, me = policy.member(self.calls.get(msg.call_id), msg.call_id, c.me.name)
        if me is None:  # the customer hangs up while ringing
            return self._on_cancel(c, msg)
        return [self._ok(c, msg), *self._leave(call, me, why="hung up"), *self._notify_views()]

    # ------------------------------------------------------------------------------ leaving and ending
    def _leave(self, call: Call, p: Participant, why: str) -> list[Action]:
        if p.role is Role.AGENT:
            return self._end_call(call, f"the agent ended the call ({why})", by=p.user)
        if p.role is Role.CUSTOMER:
            return self._end_call(call, f"the customer {'hung up' if why == 'hung up' else f'left ({why})'}", by=p.user)
        del call.participants[p.user]
        self.user_call.pop(p.user, None)
        self._refresh_idle(p.user)
        out: list[Action] = [RemoveLeg(call.call_id, p.leg)]
        if p.role is Role.SUPERVISOR:
            if p.record is not None:
                self.records.close_monitor(p.record, self.now, f"supervisor left ({why})")
            out += controls.undo_mutes(call, p.user) + controls.stop_metering(call)
            log.info("signaling.monitor_ended", call_id=call.call_id, supervisor=p.user, why=f"left ({why})")
        else:
            log.info("signaling.party_left", call_id=call.call_id, party=p.user, why=why)
        return out + views.call_state(call, self.conns)

    def _end_call(self, call: Call, reason: str, by: str | None, notify_customer: bool = True) -> list[Action]:
        """End the call for everyone. ``by`` (an agent or customer, or None) is not told; supervisors are
        told with NOTIFY session-ended, the others with BYE."""
        if call.call_id not in self.calls:
            return []
        call.state = CallState.ENDED
        out = self._release_pending(call, reason)
        for p in list(call.participants.values()):
            out.append(RemoveLeg(call.call_id, p.leg))
            self._ring_after.pop(p.leg, None)
            self.user_call.pop(p.user, None)
            if p.user in self.agents:
                self.agents[p.user].call_id = None
                self.agents[p.user].since = self.now
            self._refresh_idle(p.user)
            if p.role is Role.SUPERVISOR and p.record is not None:
                self.records.close_monitor(p.record, self.now, reason)
            if p.user == by or p.conn not in self.conns:
                continue
            if p.role is Role.SUPERVISOR:
                out.append(self._request(p.conn, "NOTIFY", event="session-ended", call_id=call.call_id,
                                         reason=reason))
                log.info("signaling.monitor_ended", call_id=call.call_id, supervisor=p.user, why=reason)
            elif p.role is not Role.CUSTOMER or notify_customer:
                out.append(self._request(p.conn, "BYE", call_id=call.call_id, reason=reason))
        self.user_call.pop(call.customer, None)
        if call.record is not None:
            self.records.close_contact(call.record, self.now, reason, by)
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
        if call.customer == name and call.state is CallState.RINGING:
            return self._end_call(call, f"the customer hung up ({why})", by=name, notify_customer=False)
        return []
