"""Permission and limit checks: pure functions that raise :class:`Refused` or return nothing.

The core calls them before it changes any state, and turns a :class:`Refused` into the response once,
in ``SignalingCore.handle``. The rules themselves are described in ``docs/protocol.md``.
"""

from __future__ import annotations

from collections.abc import Container, Mapping

from bargein.mixer.limits import CallLimits, LimitError
from bargein.mixer.roles import Role, SupervisorMode

from .directory import User
from .model import Call, CallState, Participant
from .settings import Settings


class Refused(Exception):
    """A request is refused with ``status`` and a ``reason`` naming the problem."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status, self.reason = status, reason


def require(perms: Container[str], perm: str, user: User, what: str = "") -> None:
    if perm not in perms:
        raise Refused(403, f"profile {user.profile} lacks {perm}{what}")


def within_limits(limits: CallLimits, roles: list[tuple[Role, SupervisorMode | None]]) -> None:
    try:
        limits.check(roles)
    except LimitError as exc:
        raise Refused(486, str(exc)) from None


def not_busy(user_call: Mapping[str, str], name: str, template: str = "you are already in call {}") -> None:
    if name in user_call:
        raise Refused(486, template.format(user_call[name]))


def may_call_queue(user: User, perms: Container[str], queue: str, settings: Settings) -> None:
    if user.role == "supervisor" or "ccp_access" not in perms:
        raise Refused(403, "only customers (or users with ccp_access) call a queue")
    if queue not in settings.queues:
        raise Refused(404, f"no queue {queue!r}: queues are {', '.join(sorted(settings.queues))}")


def member(call: Call | None, call_id: str, user: str) -> tuple[Call, Participant | None]:
    """The call and the user's place in it; a ringing call's customer is not a participant yet."""
    if call is None:
        raise Refused(481, f"no call {call_id!r}")
    p = call.participants.get(user)
    if p is None and not (call.customer == user and call.state is CallState.RINGING):
        raise Refused(403, f"you are not in call {call_id!r}")
    return call, p


def may_monitor(user: User, perms: Container[str], settings: Settings, call: Call | None, call_id: str) -> Call:
    require(perms, "realtime_monitor", user)
    if call is None:
        raise Refused(404, f"no live call {call_id!r}")
    if call.state is not CallState.ACTIVE:
        raise Refused(480, f"call {call_id} is not answered yet")
    if not settings.queues[call.queue].monitoring_allowed:
        raise Refused(403, f"monitoring is not allowed for calls in queue {call.queue!r}")
    return call


def may_set_mode(user: User, perms: Container[str], settings: Settings, call: Call, sup: Participant | None,
                 mode: SupervisorMode) -> None:
    """``sup`` is the supervisor changing mode (None when joining)."""
    if mode is not SupervisorMode.MONITOR:
        require(perms, "realtime_barge", user, f": {mode.value} refused, still monitoring")
        if not settings.enhanced_monitoring:
            raise Refused(403, f"enhanced monitoring is off on this instance: {mode.value} is disabled")
    within_limits(settings.limits, call.roles(without=sup) + [(Role.SUPERVISOR, mode)])


def may_change_mode(me: Participant, mode: str | None) -> SupervisorMode:
    if me.role is not Role.SUPERVISOR:
        raise Refused(403, "only supervisors change monitoring mode")
    if mode is None:
        raise Refused(400, "missing field 'mode' (monitor, barge or coach)")
    return SupervisorMode(mode)


def may_act_on(me: Participant, target: Participant, action: str, value: bool) -> None:
    """INFO mute / hold / drop by ``me`` on ``target`` (possibly themselves)."""
    other = target is not me
    if other:
        barging = me.role is Role.SUPERVISOR and me.mode is SupervisorMode.BARGE
        agent_holds = action == "hold" and me.role is Role.AGENT
        if not (barging or agent_holds):
            if me.caller_side:  # never mention supervisors to a customer
                raise Refused(403, f"you can only {action} yourself")
            raise Refused(403, f"only a barging supervisor may {action} another participant")
        if target.role is Role.SUPERVISOR:
            raise Refused(403, "supervisors cannot act on other supervisors")
    if action == "drop":
        if not other:
            raise Refused(400, "field 'target': name the participant to drop (use BYE to leave)")
        if target.role is Role.AGENT:
            raise Refused(403, "the agent cannot be dropped; the agent ends the call")
    owner = target.muted_by if action == "mute" else target.held_by if action == "hold" else None
    if not value and owner is not None and owner != me.user:
        if other:
            raise Refused(403, f"{target.user} was {'muted' if action == 'mute' else 'put on hold'} by {owner}: "
                               f"only they can release it")
        if action == "hold":
            raise Refused(403, "you were put on hold: only the agent can take you off hold")
        if me.role is Role.AGENT:
            raise Refused(403, f"muted by supervisor {owner}: only they can unmute you")
        # a customer (or other caller-side party) is never told that a supervisor is there
        raise Refused(403, "your microphone was muted for you during this call: you cannot unmute it yourself")


def may_refer(me: Participant | None, target: User | None, target_name: str, online: Container[str],
              user_call: Mapping[str, str], call: Call, limits: CallLimits) -> User:
    if me is None or me.role is not Role.AGENT:
        raise Refused(403, "only the call's agent adds a party")
    if target is None or target.role == "supervisor":
        raise Refused(404, f"no user {target_name!r} who can join a call")
    if target.name not in online:
        raise Refused(480, f"{target.name} is not signed in")
    if target.name in user_call:
        raise Refused(486, f"{target.name} is busy on another call")
    if call.pending is not None:
        raise Refused(491, "another invitation on this call is pending")
    within_limits(limits, call.roles() + [(Role.PARTY, None)])
    return target


def may_cancel(call: Call | None, call_id: str, user: str) -> Call:
    if call is None or call.customer != user:
        raise Refused(481, f"no call {call_id!r} of yours")
    if call.state is not CallState.RINGING:
        raise Refused(481, "the call is already answered: use BYE")
    return call
