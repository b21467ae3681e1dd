"""What the media path reports to the signaling core: an offer answered, a leg's media gone, whole calls lost
(a media worker died). Part of :class:`~.core.SignalingCore`, kept apart because it is the media adapter's
side of the core, not a client's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

from . import messages as m
from . import views
from .actions import Action, Send

if TYPE_CHECKING:
    from .core import SignalingCore

log = structlog.get_logger("bargein.signaling")


class MediaEvents:
    def media_answered(self: SignalingCore, leg: str, now: float | None = None) -> list[Action]:
        """The adapter answered the SDP offer of ``leg``: a call waiting for its customer's answer now rings."""
        self._at(now)
        call = self._ring_after.pop(leg, None)
        if call is None or call.call_id not in self.calls:
            return []
        if (agent := self.acd.pick(call)) is not None:
            return self._ring(call, agent)
        return [Send(call.customer_conn, m.response(call.customer_cseq, "INVITE", 480, "no agent available",
                                                    call_id=call.call_id)),
                *self._end_call(call, "no agent available", by=None, notify_customer=False), *self._notify_views()]

    def media_failed(self: SignalingCore, leg: str, now: float | None = None, refused: bool = False) -> list[Action]:
        """The leg's media failed: its offer could not be answered (``refused``: the adapter sent 488) or it
        died later (its owner is told: BYE, or NOTIFY session-ended). The leg is freed like a BYE."""
        self._at(now)
        for call in list(self.calls.values()):
            for p in list(call.participants.values()):
                if p.leg == leg:
                    log.info("signaling.media_gone", call_id=call.call_id, user=p.user, leg=leg, refused=refused)
                    told = [] if refused or p.conn not in self.conns else [views.media_lost(call, p, self.conns[p.conn])]
                    return told + self._leave(call, p, why="media connection lost") + self._notify_views()
        return []

    def media_lost(self: SignalingCore, call_ids: list[str], reason: str, now: float | None = None) -> list[Action]:
        """Whole calls lost their media (their media worker died): each ends, everyone told the reason."""
        self._at(now)
        out: list[Action] = []
        for call in [call for cid in call_ids if (call := self.calls.get(cid)) is not None]:
            log.info("signaling.call_media_lost", call_id=call.call_id, why=reason)
            out += self._end_call(call, reason, by=None)
        return out + self._notify_views() if out else out

    def leg_levels(self: SignalingCore, call_id: str, levels: Mapping[str, float], now: float | None = None
                   ) -> list[Action]:
        """Levels of a metered call's legs (by core leg id) over the last window: ``NOTIFY levels`` to each of
        its supervisors. Never to the customer, another party or the agent: a customer must not learn that
        anyone is listening (docs/behaviour.md)."""
        self._at(now)
        call = self.calls.get(call_id)
        if call is None or not levels:
            return []
        rows = views.levels(call, levels)
        return [c.notify("levels", call_id=call_id, at=self.now, levels=rows)
                for p in call.supervisors() if (c := self.conns.get(p.conn)) is not None]



__all__ = ["MediaEvents"]
