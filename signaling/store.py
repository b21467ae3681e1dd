"""Persistent contact records: an interface, and its SQL implementation (SQLAlchemy Core; SQLite by default).

Writes never block the event loop: :meth:`ContactStore.save_contact` / :meth:`save_monitor` queue the
latest snapshot of a row, and one writer thread commits whatever is queued at least every
``commit_interval_s`` (0.2 s), coalescing many updates of one row into one write. SQLite runs in WAL
mode, so a committed transaction survives the process being killed (``SIGKILL``): at most the last
fraction of a second is lost. Reads run on worker threads (``asyncio.to_thread``).

Only SQLAlchemy Core is used for rows and queries, so another database is a URL away (``database_url``).
PostgreSQL (``postgresql+psycopg://...``, the ``postgres`` extra) is what a cluster of nodes shares; for it:

- the tables are created under an advisory lock, so nodes starting together do not race;
- ids compare in the ``C`` collation, as in SQLite, so newest-first order and cursors do not depend on
  the server's locale;
- connections are checked before use (``pool_pre_ping``): a restarted database is reconnected to.

When the database cannot be reached (an outage, a restart, SQLite's lock), the writer keeps the rows
it could not write (the latest snapshot of each) and tries again every ``retry_interval_s``; a row the
database refuses as such (a value too long for its column) is dropped alone, logged, and the rest are
written.
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
    text,
    update,
)
from sqlalchemy import exc as sa_exc
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


def _id_type() -> String:
    # ids sort by time as plain bytes: PostgreSQL would otherwise compare them in the database's locale
    return String(32).with_variant(String(32, collation="C"), "postgresql")


metadata = MetaData()
contacts_table = Table(
    "contacts", metadata,
    Column("contact_id", _id_type(), primary_key=True),
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
    Column("session_id", _id_type(), primary_key=True),
    Column("contact_id", _id_type(), nullable=False, index=True),
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


_SCHEMA_LOCK = 0x62617267  # PostgreSQL advisory lock key held while creating the tables ("barg")


def _unreachable(exc: Exception) -> bool:
    """The database could not be reached or was busy (worth trying again), as opposed to refusing a row."""
    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) or \
        bool(getattr(exc, "connection_invalidated", False))


def create_schema(engine: Engine) -> None:
    """Create the tables if they are missing. Several nodes (processes) may start at once on one database:
    on PostgreSQL they take turns under an advisory lock, on SQLite under the database's write lock
    (``BEGIN IMMEDIATE``: the check for a table and its ``CREATE`` are otherwise separate statements, and
    two nodes could both find it missing). Elsewhere, one that loses the race looks again."""
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                elif conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                metadata.create_all(conn)
            return
        except sa_exc.DBAPIError:
            if attempt == 2:
                raise


class SqlContactStore(ContactStore):
    def __init__(self, url: str, commit_interval_s: float = 0.2, retry_interval_s: float = 1.0) -> None:
        self.url = url
        sqlite = url.startswith("sqlite")
        self.engine: Engine = create_engine(url, pool_pre_ping=not sqlite)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        create_schema(self.engine)
        self.commit_interval_s = commit_interval_s
        self.retry_interval_s = retry_interval_s
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.dropped = 0  # rows the database refused (logged one by one)
        self.unwritten = 0  # rows waiting for the database to come back

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
        # rows not yet committed, by key: the latest snapshot of each (kept across an outage)
        contacts: dict[str, dict[str, Any]] = {}
        monitors: dict[str, dict[str, Any]] = {}
        stop = False
        while not stop:
            waiters: list[Any] = []
            try:  # with rows left over from an outage, wake up to try again
                kind, item = self._queue.get(timeout=self.retry_interval_s if contacts or monitors else None)
            except queue.Empty:
                kind, item = "retry", None
            while kind != "retry":  # gather what arrives within the commit interval
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
                self._write(contacts, monitors)
            for w in waiters:
                w()
        if contacts or monitors:
            log.error("store.rows_lost", contacts=len(contacts), monitors=len(monitors),
                      why="the database was unreachable until the store closed")

    def _write(self, contacts: dict[str, dict[str, Any]], monitors: dict[str, dict[str, Any]]) -> None:
        """Commit the rows in one transaction and forget them; keep them if the database is unreachable;
        if it refuses the batch, write row by row and drop only the rows it refuses."""
        rows = [(contacts_table, "contact_id", contacts), (monitors_table, "session_id", monitors)]
        try:
            try:
                with self.engine.begin() as conn:
                    for table, key, batch in rows:
                        for row in batch.values():
                            self._upsert(conn, table, key, row)
                self.commits += 1
                contacts.clear()
                monitors.clear()
            except Exception as exc:
                if _unreachable(exc):
                    raise
                self._write_one_by_one(rows)  # clears the batches as it goes; raises if the database goes away
        except Exception as exc:  # unreachable: keep the rows; never let the writer thread die
            log.warning("store.unreachable", waiting=len(contacts) + len(monitors),
                        error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        self.unwritten = len(contacts) + len(monitors)

    def _write_one_by_one(self, rows: list[tuple[Table, str, dict[str, dict[str, Any]]]]) -> None:
        for table, key, batch in rows:
            for k, row in list(batch.items()):
                try:
                    with self.engine.begin() as conn:
                        self._upsert(conn, table, key, row)
                except Exception as exc:
                    if _unreachable(exc):  # the database went away meanwhile: keep what is left
                        raise
                    self.dropped += 1
                    log.error("store.row_refused", table=table.name, key=k, error=str(exc).splitlines()[0])
                else:
                    self.commits += 1
                del batch[k]

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
