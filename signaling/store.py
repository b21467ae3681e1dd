"""Persistent contact records: an interface, and its SQL implementation (SQLAlchemy Core; SQLite by default).

Writes never block the event loop: :meth:`ContactStore.save_contact` / :meth:`save_monitor` queue the
latest snapshot of a row, and one writer thread commits whatever is queued at least every
``commit_interval_s`` (0.2 s), coalescing many updates of one row into one write. SQLite runs in WAL
mode, so a committed transaction survives the process being killed (``SIGKILL``): at most the last
fraction of a second is lost. Reads run on worker threads (``asyncio.to_thread``).

Only SQLAlchemy Core is used (no dialect-specific SQL), so another database is a URL away
(``database_url``, e.g. PostgreSQL).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from abc import ABC, abstractmethod
from typing import Any

import structlog
from sqlalchemy import (
    JSON,
    Column,
    Float,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine

from .contact_models import Contact, ContactQuery, MonitorSession

log = structlog.get_logger("bargein.store")


class ContactStore(ABC):
    """Where contacts and monitor sessions are kept."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None:
        """Write everything queued, then stop."""

    @abstractmethod
    def save_contact(self, contact: Contact) -> None:
        """Queue the contact's current state (insert or replace); never blocks."""

    @abstractmethod
    def save_monitor(self, session: MonitorSession) -> None: ...

    @abstractmethod
    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""

    @abstractmethod
    async def search(self, q: ContactQuery) -> tuple[list[Contact], str | None]:
        """Matching contacts, newest first, and the cursor of the next page (None at the end)."""

    @abstractmethod
    async def get(self, contact_id: str) -> tuple[Contact, list[MonitorSession]] | None: ...

    @abstractmethod
    async def expire(self, before: float) -> list[Contact]:
        """Delete contacts initiated before ``before`` (and their monitor sessions); return them."""


metadata = MetaData()
contacts_table = Table(
    "contacts", metadata,
    Column("contact_id", String(32), primary_key=True),
    Column("call_id", String(64), nullable=False),
    Column("channel", String(8), nullable=False, index=True),
    Column("queue", String(64), nullable=False, index=True),
    Column("customer", String(64), nullable=False),
    Column("agent", String(64), index=True),
    Column("parties", JSON, nullable=False),
    Column("initiated", Float, nullable=False, index=True),
    Column("connected", Float),
    Column("disconnected", Float),
    Column("disconnect_reason", Text),
    Column("ended_by", String(64)),
    Column("recording_path", Text),
    Column("transcript_path", Text),
    Column("recording_error", Text),
)
monitors_table = Table(
    "monitor_sessions", metadata,
    Column("session_id", String(32), primary_key=True),
    Column("contact_id", String(32), nullable=False, index=True),
    Column("supervisor", String(64), nullable=False),
    Column("started", Float, nullable=False),
    Column("initial_mode", String(16), nullable=False),
    Column("mode_changes", JSON, nullable=False),
    Column("ended", Float),
    Column("end_reason", Text),
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # a commit survives the process being killed
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


class SqlContactStore(ContactStore):
    def __init__(self, url: str, commit_interval_s: float = 0.2) -> None:
        self.url = url
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)
        self.commit_interval_s = commit_interval_s
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0

    # ------------------------------------------------------------------ writes (writer thread)
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bargein-store", daemon=True)
            self._thread.start()

    def save_contact(self, contact: Contact) -> None:
        self._queue.put(("contact", contact.model_dump()))

    def save_monitor(self, session: MonitorSession) -> None:
        self._queue.put(("monitor", session.model_dump()))

    async def flush(self) -> None:
        if self._thread is None:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.put(("flush", lambda: loop.call_soon_threadsafe(
            lambda: done.done() or done.set_result(None))))
        await done

    async def close(self) -> None:
        if self._thread is not None:
            self._queue.put(("stop", None))
            await asyncio.to_thread(self._thread.join, 30)
            self._thread = None
        self.engine.dispose()

    def _run(self) -> None:
        stop = False
        while not stop:
            contacts: dict[str, dict[str, Any]] = {}
            monitors: dict[str, dict[str, Any]] = {}
            waiters: list[Any] = []
            kind, item = self._queue.get()
            while True:  # gather what arrives within the commit interval
                if kind == "contact":
                    contacts[item["contact_id"]] = item
                elif kind == "monitor":
                    monitors[item["session_id"]] = item
                elif kind == "flush":
                    waiters.append(item)
                    break
                else:
                    stop = True
                    break
                try:
                    kind, item = self._queue.get(timeout=self.commit_interval_s)
                except queue.Empty:
                    break
            if contacts or monitors:
                try:
                    with self.engine.begin() as conn:
                        for row in contacts.values():
                            self._upsert(conn, contacts_table, "contact_id", row)
                        for row in monitors.values():
                            self._upsert(conn, monitors_table, "session_id", row)
                    self.commits += 1
                except Exception:  # a failing database must not take the writer down: log, keep going
                    log.exception("store.write_failed", contacts=len(contacts), monitors=len(monitors))
            for w in waiters:
                w()

    @staticmethod
    def _upsert(conn: Connection, table: Table, key: str, row: dict[str, Any]) -> None:
        res = conn.execute(update(table).where(table.c[key] == row[key]).values(**row))
        if res.rowcount == 0:
            conn.execute(insert(table).values(**row))

    # ------------------------------------------------------------------ reads (worker threads)
    async def search(self, q: ContactQuery) -> tuple[list[Contact], str | None]:
        return await asyncio.to_thread(self._search, q)

    def _search(self, q: ContactQuery) -> tuple[list[Contact], str | None]:
        t = contacts_table
        stmt = select(t).order_by(t.c.contact_id.desc()).limit(q.limit + 1)
        for col, value in (("channel", q.channel), ("queue", q.queue), ("agent", q.agent)):
            if value is not None:
                stmt = stmt.where(t.c[col] == value)
        if q.from_ is not None:
            stmt = stmt.where(t.c.initiated >= q.from_)
        if q.to is not None:
            stmt = stmt.where(t.c.initiated < q.to)
        if q.cursor is not None:
            stmt = stmt.where(t.c.contact_id < q.cursor)
        with self.engine.connect() as conn:
            rows = [Contact.model_validate(dict(r._mapping)) for r in conn.execute(stmt)]
        more = len(rows) > q.limit
        rows = rows[: q.limit]
        return rows, rows[-1].contact_id if more else None

    async def get(self, contact_id: str) -> tuple[Contact, list[MonitorSession]] | None:
        return await asyncio.to_thread(self._get, contact_id)

    def _get(self, contact_id: str) -> tuple[Contact, list[MonitorSession]] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(contacts_table).where(contacts_table.c.contact_id == contact_id)).first()
            if row is None:
                return None
            mons = conn.execute(select(monitors_table).where(monitors_table.c.contact_id == contact_id)
                                .order_by(monitors_table.c.started))
            return (Contact.model_validate(dict(row._mapping)),
                    [MonitorSession.model_validate(dict(m._mapping)) for m in mons])

    async def expire(self, before: float) -> list[Contact]:
        return await asyncio.to_thread(self._expire, before)

    def _expire(self, before: float) -> list[Contact]:
        t = contacts_table
        with self.engine.begin() as conn:
            old = [Contact.model_validate(dict(r._mapping))
                   for r in conn.execute(select(t).where(t.c.initiated < before))]
            ids = [c.contact_id for c in old]
            for i in range(0, len(ids), 500):
                chunk = ids[i: i + 500]
                conn.execute(delete(monitors_table).where(monitors_table.c.contact_id.in_(chunk)))
                conn.execute(delete(t).where(t.c.contact_id.in_(chunk)))
        if old:
            log.info("store.expired", contacts=len(old), before=before)
        return old
