"""Server INVITEs waiting for an answer (at most one per call): found again by the answer's (connection,
cseq), and expired at their ring deadline."""

from __future__ import annotations

from typing import Any

from bargein.mixer.roles import Role

from .actions import ConnId, Send
from .model import Call, Connection, PendingInvite


class Invitations:
    def __init__(self) -> None:
        self._calls: dict[tuple[ConnId, int], Call] = {}

    def offer(self, call: Call, user: str, role: Role, conn: Connection, deadline: float,
              referred_by: str | None = None, **fields: Any) -> Send:
        """INVITE ``user`` (on ``conn``) into ``call``; ``call.pending`` holds it until :meth:`clear`."""
        invite = conn.request("INVITE", call_id=call.call_id, **{"from": referred_by or call.customer},
                              queue=call.queue, **fields)
        call.pending = PendingInvite(call.call_id, user, conn.conn, invite.message["cseq"], role, deadline,
                                     referred_by=referred_by)
        self._calls[(conn.conn, call.pending.cseq)] = call
        return invite

    def answered(self, conn: ConnId, cseq: int) -> Call | None:
        """The call whose pending INVITE this response (on ``conn``, echoing ``cseq``) answers."""
        call = self._calls.get((conn, cseq))
        p = call.pending if call else None
        return call if p is not None and (p.conn, p.cseq) == (conn, cseq) else None

    def clear(self, call: Call) -> PendingInvite | None:
        p, call.pending = call.pending, None
        if p is not None:
            self._calls.pop((p.conn, p.cseq), None)
        return p

    def next_deadline(self) -> float | None:
        return min((c.pending.deadline for c in self._calls.values() if c.pending is not None), default=None)

    def due(self, now: float) -> list[Call]:
        return [c for c in self._calls.values() if c.pending is not None and now >= c.pending.deadline]
