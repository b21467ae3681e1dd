"""In-call controls on the call model: a supervisor's mode, mute and hold, and undoing a supervisor's mutes.

The checks live in :mod:`.policy`; these functions only change the participants and say which mixer
legs to update.
"""

from __future__ import annotations

import structlog
from bargein.mixer.roles import SupervisorMode

from .actions import Action, UpdateLeg
from .model import Call, Participant

log = structlog.get_logger("bargein.signaling")


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
    """``mute`` or ``hold`` ``target``; a mute by someone else remembers who did it."""
    if action == "mute":
        target.muted = value
        target.muted_by = by.user if (value and target is not by) else None
    else:
        target.held = value
    log.info("signaling.participant_changed", call_id=call.call_id, by=by.user, target=target.user,
             action=action, value=value)
    return [UpdateLeg(call.call_id, target.leg, target.routing())]


def undo_mutes(call: Call, supervisor: str) -> list[Action]:
    """A party muted by a supervisor is unmuted when that supervisor stops barging or leaves."""
    out: list[Action] = []
    for p in call.participants.values():
        if p.muted_by == supervisor:
            p.muted, p.muted_by = False, None
            out.append(UpdateLeg(call.call_id, p.leg, p.routing()))
            log.info("signaling.participant_changed", call_id=call.call_id, target=p.user, action="mute",
                     value=False, why=f"{supervisor} stopped barging")
    return out
