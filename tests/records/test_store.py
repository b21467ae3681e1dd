"""The contact store itself, against the embedded SQLite default and a real PostgreSQL server: values come
back as they went in, search and pages agree with a plain Python filter, a refused row costs only itself,
several stores (a cluster's nodes) share one database, and a database outage loses nothing queued."""

import random
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bargein.signaling.contact_models import Contact, ContactQuery, ModeChange, MonitorSession, new_id
from bargein.signaling.store import SqlContactStore, metadata
from helpers.postgres_server import PostgresServer
from sqlalchemy import Table, create_engine, event, inspect
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.schema import CreateTable


def url_for(database_url: str | None, tmp_path: Path) -> str:
    return database_url or f"sqlite:///{tmp_path / 'contacts.sqlite3'}"


@pytest.fixture
async def store(database_url: str | None, tmp_path: Path) -> AsyncIterator[SqlContactStore]:
    s = SqlContactStore(url_for(database_url, tmp_path))
    s.start()
    yield s
    await s.close()


def contact(t: float, **fields: object) -> Contact:
    base = {"contact_id": new_id(t), "call_id": "call-1", "queue": "support", "customer": "customer1",
            "initiated": t}
    return Contact.model_validate({**base, **fields})


async def test_values_come_back_as_they_went_in(store: SqlContactStore) -> None:
    t = 1_700_000_000.123456  # sub-millisecond times survive (double precision on both)
    c = contact(t, channel="chat", agent="agent1", parties=["agent2", "Zoë ✓"], connected=t + 0.000_001,
                disconnected=t + 61.5, disconnect_reason="l'agent a raccroché — 終了", ended_by="agent1",
                recording_path=None, transcript_path="transcripts/x.json", recording_error=None)
    m = MonitorSession(session_id=new_id(t + 1), contact_id=c.contact_id, supervisor="supervisor1", started=t + 1,
                       initial_mode="monitor", mode_changes=[ModeChange(at=t + 2, mode="barge", by="supervisor1"),
                                                             ModeChange(at=t + 3, mode="coach", by="supervisor2")])
    store.save_contact(c)
    store.save_monitor(m)
    await store.flush()
    assert await store.get(c.contact_id) == (c, [m])
    # a later snapshot of the same row replaces it (the writer's upsert)
    c2 = c.model_copy(update={"parties": [], "disconnect_reason": None, "agent": None})
    store.save_contact(c2)
    await store.flush()
    got = await store.get(c.contact_id)
    assert got is not None and got[0] == c2 and got[0].parties == [] and got[0].agent is None


async def test_search_and_pages_agree_with_a_plain_filter(store: SqlContactStore) -> None:
    rng = random.Random(13)
    t0 = 1_700_000_000.0
    rows = []
    for i in range(240):
        t = t0 + rng.choice([0, 0.0004, 1, 2.5, 7]) + i // 40  # many share a millisecond: the random part orders them
        rows.append(contact(t, call_id=f"call-{i}", channel=rng.choice(["voice", "chat"]),
                            queue=rng.choice(["support", "sales"]), agent=rng.choice(["agent1", "agent2", None])))
    for c in rows:
        store.save_contact(c)
    await store.flush()
    newest_first = sorted(rows, key=lambda c: c.contact_id, reverse=True)  # byte order, as ids are made to sort
    for _ in range(25):
        q = {k: v for k, v in {"channel": rng.choice(["voice", "chat", None]),
                               "queue": rng.choice(["support", "sales", None]),
                               "agent": rng.choice(["agent1", "agent2", None]),
                               "from": rng.choice([None, t0 + 1, t0 + 3]), "to": rng.choice([None, t0 + 4, t0 + 9]),
                               "limit": rng.choice([1, 7, 50])}.items() if v is not None}
        want = [c.contact_id for c in newest_first
                if all(getattr(c, k) == q[k] for k in ("channel", "queue", "agent") if k in q)
                and ("from" not in q or c.initiated >= q["from"]) and ("to" not in q or c.initiated < q["to"])]
        got, cursor = [], None
        while True:
            page, cursor = await store.search(ContactQuery.model_validate({**q, "cursor": cursor}))
            assert len(page) <= q["limit"]
            got += [c.contact_id for c in page]
            if cursor is None:
                break
        assert got == want, q


async def test_expire_deletes_contacts_and_their_monitor_sessions(store: SqlContactStore) -> None:
    old, new = contact(1000.0), contact(5000.0)
    for c in (old, new):
        store.save_contact(c)
        store.save_monitor(MonitorSession(session_id=new_id(c.initiated), contact_id=c.contact_id,
                                          supervisor="supervisor1", started=c.initiated, initial_mode="monitor"))
    await store.flush()
    assert [c.contact_id for c in await store.expire(2000.0)] == [old.contact_id]
    assert await store.get(old.contact_id) is None
    found = await store.get(new.contact_id)
    assert found is not None and len(found[1]) == 1
    assert await store.expire(2000.0) == []  # another node's retention pass finds nothing left


async def test_a_refused_row_costs_only_itself(store: SqlContactStore, database_url: str | None) -> None:
    """PostgreSQL refuses a NUL character in text (SQLite keeps it); the rows committed with it are not lost."""
    good = [contact(2000.0 + i, call_id=f"call-{i}") for i in range(5)]
    bad = contact(2000.5, call_id="call-bad", disconnect_reason="cut\x00off")
    for c in (*good[:2], bad, *good[2:]):
        store.save_contact(c)
    await store.flush()
    found, _ = await store.search(ContactQuery(limit=500))
    ids = {c.contact_id for c in found}
    assert {c.contact_id for c in good} <= ids
    if database_url is None:
        assert bad.contact_id in ids and store.dropped == 0
    else:
        assert bad.contact_id not in ids and store.dropped == 1
    store.save_contact(contact(3000.0))  # the writer goes on
    await store.flush()
    assert len((await store.search(ContactQuery(limit=500)))[0]) == len(ids) + 1


def test_a_node_creating_the_tables_meanwhile_cannot_slip_between_check_and_create(tmp_path: Path) -> None:
    """A rival node tries to create each table just after this node found it missing (the race a CI run
    lost with four nodes starting at once). On SQLite the rival must wait for the write lock, so the
    tables are made by one node and neither fails; before the fix every attempt failed 'already exists'."""
    path = tmp_path / "contacts.sqlite3"
    rival_created: list[str] = []

    def rival_creates(target: Table, connection: object, **_kw: object) -> None:
        rival = sqlite3.connect(path, timeout=0.05)
        try:
            rival.execute(str(CreateTable(target).compile(dialect=sqlite_dialect())))
            rival.commit()
            rival_created.append(target.name)
        except sqlite3.OperationalError:
            pass  # locked out: the node creating the schema holds the write lock
        finally:
            rival.close()

    for table in metadata.tables.values():
        event.listen(table, "before_create", rival_creates)
    try:
        SqlContactStore(f"sqlite:///{path}")
    finally:
        for table in metadata.tables.values():
            event.remove(table, "before_create", rival_creates)
    assert rival_created == []
    assert set(inspect(create_engine(f"sqlite:///{path}")).get_table_names()) == set(metadata.tables)


async def test_stores_sharing_one_database_see_each_others_rows(database_url: str | None, tmp_path: Path) -> None:
    """What a cluster does: every node has its own store on one database. The nodes start at once
    (the tables are created once, under a lock on PostgreSQL) and each finds the others' contacts."""
    url = url_for(database_url, tmp_path)
    stores: list[SqlContactStore] = []
    errors: list[BaseException] = []
    go = threading.Barrier(4)

    def open_store() -> None:
        go.wait()
        try:
            stores.append(SqlContactStore(url))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert errors == [] and len(stores) == 4
    try:
        mine = {}
        for i, s in enumerate(stores):
            s.start()
            mine[i] = [contact(4000.0 + i * 10 + k, call_id=f"node{i}-call-{k}") for k in range(3)]
            for c in mine[i]:
                s.save_contact(c)
        for s in stores:
            await s.flush()
        everyone = sorted((c.contact_id for rows in mine.values() for c in rows), reverse=True)
        for s in stores:
            assert [c.contact_id for c in (await s.search(ContactQuery(limit=500)))[0]] == everyone
            assert (await s.get(mine[3][0].contact_id)) is not None
    finally:
        for s in stores:
            await s.close()


@pytest.mark.slow
async def test_a_database_outage_loses_nothing_queued() -> None:
    """PostgreSQL stops while calls go on: their rows wait in the writer and are committed once it is back
    (a restarted server is reconnected to)."""
    with PostgresServer() as pg:
        s = SqlContactStore(pg.create_database(), retry_interval_s=0.2)
        s.start()
        try:
            before = contact(6000.0)
            s.save_contact(before)
            await s.flush()
            pg.stop()
            during = [contact(6001.0 + i) for i in range(3)]
            for c in during:
                s.save_contact(c)
            s.save_contact(before.model_copy(update={"disconnected": 6009.0}))
            await s.flush()  # the attempt failed: the rows wait
            assert s.unwritten == 4
            pg.start()
            await s.flush()
            assert s.unwritten == 0
            rows, _ = await s.search(ContactQuery(limit=500))
            assert sorted(c.contact_id for c in rows) == sorted([before.contact_id, *(c.contact_id for c in during)])
            got = await s.get(before.contact_id)
            assert got is not None and got[0].disconnected == 6009.0
        finally:
            await s.close()
