"""Contact and monitor-session records: every call and every supervision leaves one (kept in memory,
bounded; served at ``GET /api/records``). A :class:`RecordListener` (the server's contact log) is told of
every change, to persist it and to start or stop the call's recording."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass
class ContactRecord:
    contact_id: str
    queue: str
    customer: str
    initiated: float
    agent: str | None = None
    parties: list[str] = field(default_factory=list)
    answered: float | None = None
    ended: float | None = None
    end_reason: str | None = None
    ended_by: str | None = None
    events: list[tuple[float, str]] = field(default_factory=list)
    channel: str = "voice"  # "chat": no audio to record; its transcript is stored instead


@dataclass
class MonitorRecord:
    session_id: str
    contact_id: str
    supervisor: str  # who started it
    started: float
    initial_mode: str
    mode_changes: list[tuple[float, str, str]] = field(default_factory=list)  # (time, mode, by)
    ended: float | None = None
    end_reason: str | None = None


class RecordListener(Protocol):
    def contact_changed(self, rec: ContactRecord) -> None: ...

    def monitor_changed(self, rec: MonitorRecord) -> None: ...


class Records:
    def __init__(self, keep: int = 10000) -> None:
        self.contacts: deque[ContactRecord] = deque(maxlen=keep)
        self.monitors: deque[MonitorRecord] = deque(maxlen=keep)
        self._ids = itertools.count(1)
        self.listener: RecordListener | None = None

    def changed(self, rec: ContactRecord | MonitorRecord) -> None:
        """Call after changing a record in place (answered, a party joined, a mode change)."""
        if self.listener is None:
            return
        if isinstance(rec, ContactRecord):
            self.listener.contact_changed(rec)
        else:
            self.listener.monitor_changed(rec)

    def open_contact(self, contact_id: str, queue: str, customer: str, now: float,
                     channel: str = "voice") -> ContactRecord:
        rec = ContactRecord(contact_id, queue, customer, now, channel=channel)
        self.contacts.append(rec)
        self.changed(rec)
        return rec

    def close_contact(self, rec: ContactRecord, now: float, reason: str, by: str | None) -> None:
        rec.ended, rec.end_reason, rec.ended_by = now, reason, by
        self.changed(rec)

    def open_monitor(self, contact_id: str, supervisor: str, mode: str, now: float) -> MonitorRecord:
        rec = MonitorRecord(f"mon-{next(self._ids)}", contact_id, supervisor, now, mode)
        self.monitors.append(rec)
        self.changed(rec)
        return rec

    def close_monitor(self, rec: MonitorRecord, now: float, reason: str) -> None:
        if rec.ended is None:
            rec.ended, rec.end_reason = now, reason
            self.changed(rec)

    def as_dict(self) -> dict[str, Any]:
        return {"contacts": [asdict(r) for r in self.contacts], "monitor_sessions": [asdict(r) for r in self.monitors]}
