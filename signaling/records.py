"""Contact and monitor-session records: every call and every supervision leaves one (kept in memory,
bounded; served at ``GET /api/records``)."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any


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


class Records:
    def __init__(self, keep: int = 10000) -> None:
        self.contacts: deque[ContactRecord] = deque(maxlen=keep)
        self.monitors: deque[MonitorRecord] = deque(maxlen=keep)
        self._ids = itertools.count(1)

    def open_contact(self, contact_id: str, queue: str, customer: str, now: float) -> ContactRecord:
        rec = ContactRecord(contact_id, queue, customer, now)
        self.contacts.append(rec)
        return rec

    def close_contact(self, rec: ContactRecord, now: float, reason: str, by: str | None) -> None:
        rec.ended, rec.end_reason, rec.ended_by = now, reason, by

    def open_monitor(self, contact_id: str, supervisor: str, mode: str, now: float) -> MonitorRecord:
        rec = MonitorRecord(f"mon-{next(self._ids)}", contact_id, supervisor, now, mode)
        self.monitors.append(rec)
        return rec

    def close_monitor(self, rec: MonitorRecord, now: float, reason: str) -> None:
        if rec.ended is None:
            rec.ended, rec.end_reason = now, reason

    def as_dict(self) -> dict[str, Any]:
        return {"contacts": [asdict(r) for r in self.contacts], "monitor_sessions": [asdict(r) for r in self.monitors]}
