"""In-call controls on the call model: a supervisor's mode, mute and hold, and undoing a supervisor's mutes.

The checks live in :mod:`.policy`; these functions only change the participants and say which mixer
legs to update.
"""

from __future__ import annotations

import structlog
from bargein.mixer.roles import Role, SupervisorMode

from .actions import Action, ConnId, MeterCall, UpdateLeg
from .model import Call, Connection, Participant
from .records import Records

log = structlog.get_logger("bargein.signaling")


def join_supervisor(call: Call, user: str, conn: ConnId, leg: str, mode: SupervisorMode, records: Records,
                    now: float) -> Participant:
    sup = call.join(Participant(user, Role.SUPERVISOR, leg, conn, mode=mode))
    sup.record = records.open_monitor(call.call_id, user, mode.value, now)
    log.info("signaling.monitor_started", call_id=call.call_id, supervisor=user, mode=mode.value)
    return sup


def drop(call: Call, by: Participant, target: Participant, conn: Connection | None, now: float) -> list[Action]:
    """A barging supervisor drops ``target``: recorded, and the target is told with a neutral BYE (the caller
    is taken out of the call like a hang-up by the core)."""
    log.info("signaling.participant_dropped", call_id=call.call_id, by=by.user, target=target.user)
    if call.record:
        call.record.events.append((now, f"{target.user} dropped by {by.user}"))
    if conn is None:
        return []
    return [conn.request("BYE", call_id=call.call_id, reason="the contact center ended the call" if target.role is Role.CUSTOMER
                         else "you were removed from the call")]


def set_mode(call: Call, sup: Participant, mode: SupervisorMode, now: float) -> list[Action]:
    old, sup.mode = sup.mode, mode
    if sup.record is not None:
        sup.record.mode_changes.append((now, mode.value, sup.user))
    out: list[Action] = [UpdateLeg(call.call_id, sup.leg, sup.routing())]
    if old is SupervisorMode.BARGE and mode is not SupervisorMode.BARGE:
        out += undo_mutes(call, sup.user)
    log.info("signaling.mode_changed", call_id=call.call_id, supervisor=sup.user, old=old.value if old else None,
             mode=mode.value)
    return out


def set_flag(call: Call, by: Participant, target: Participant, action: str, value: bool) -> list[Action]:
    """``mute`` or ``hold`` ``target``. A party's own mute and hold are its own flags; a mute or hold by someone
    else is kept apart with its owner, so the party's own ``false`` does not undo it (policy checks the owner)."""
    owner = by.user if value else None
    if target is by and action == "mute":
        target.muted = value
    elif target is by:
        target.held = value
    elif action == "mute":
        target.muted_by = owner
    else:
        target.held_by = owner
    log.info("signaling.participant_changed", call_id=call.call_id, by=by.user, target=target.user,
             action=action, value=value)
    return [UpdateLeg(call.call_id, target.leg, target.routing())]


def undo_mutes(call: Call, supervisor: str) -> list[Action]:
    """What a supervisor muted or held is released when that supervisor stops barging or leaves."""
    out: list[Action] = []
    for p in call.participants.values():
        if supervisor in (p.muted_by, p.held_by):
            p.muted_by = None if p.muted_by == supervisor else p.muted_by
            p.held_by = None if p.held_by == supervisor else p.held_by
            out.append(UpdateLeg(call.call_id, p.leg, p.routing()))
            log.info("signaling.participant_changed", call_id=call.call_id, target=p.user, action="mute",
                     value=False, why=f"{supervisor} stopped barging")
    return out


def stop_metering(call: Call) -> list[Action]:
    """Levels are measured while a call has a supervisor (started when one joins): stop after the last leaves."""
    return [] if call.supervisors() else [MeterCall(call.call_id, on=False)]
