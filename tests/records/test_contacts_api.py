"""Contact search over HTTP on the real server: a real call's record, filters, pages, permissions,
range requests on the recording, transcripts and retention; each against the embedded SQLite store and
a real PostgreSQL server (the ``database_url`` fixture)."""

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import av
import pytest
from bargein.signaling.client import place_call, sign_in
from bargein.signaling.contact_models import Contact, MonitorSession, new_id
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings

SUP = {"Authorization": "Bearer supervisor1"}


@pytest.fixture
async def server(tmp_path: Path, database_url: str | None) -> AsyncIterator[tuple[BargeinServer, str]]:
    srv = BargeinServer(Settings(port=0, data_dir=tmp_path, database_url=database_url))
    async with serving(srv) as base:
        yield srv, base


async def supervised_call(srv: BargeinServer, session: aiohttp.ClientSession, base: str) -> str:
    """customer1 -> agent1, supervisor1 monitors, barges, coaches and leaves; agent1 hangs up."""
    agent = await sign_in(base + "/ws", "agent1", session=session, state="available")
    customer = await sign_in(base + "/ws", "customer1", session=session)
    call_id = await place_call(customer, agent)
    sup = await sign_in(base + "/ws", "supervisor1", session=session)
    assert (await sup.request("INVITE", to=f"call:{call_id}"))["status"] == 200
    for mode in ("barge", "coach"):
        assert (await sup.request("INFO", call_id=call_id, action="mode", mode=mode))["status"] == 200
    assert (await sup.request("BYE", call_id=call_id))["status"] == 200
    for _ in range(10):
        await srv.clock.wait_tick()
    assert (await agent.request("BYE", call_id=call_id))["status"] == 200
    for c in (agent, customer, sup):
        await c.close()
    await srv.contacts.store.flush()
    return call_id


async def get(session: aiohttp.ClientSession, url: str, headers: dict | None = None) -> tuple[int, dict]:
    async with session.get(url, headers=headers or SUP) as r:
        return r.status, await r.json()


async def test_a_call_leaves_a_contact_with_its_monitor_session(server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    async with aiohttp.ClientSession() as session:
        call_id = await supervised_call(srv, session, base)
        status, body = await get(session, base + "/api/contacts")
        assert status == 200 and body["next_cursor"] is None
        (row,) = body["contacts"]
        assert row["call_id"] == call_id and row["channel"] == "voice" and row["queue"] == "support"
        assert (row["customer"], row["agent"]) == ("customer1", "agent1")
        assert row["initiated"] <= row["connected"] <= row["disconnected"]
        assert "agent ended the call" in row["disconnect_reason"]
        assert row["recording_path"] == f"recordings/{row['contact_id']}.ogg" and row["recording_error"] is None
        status, full = await get(session, f"{base}/api/contacts/{row['contact_id']}")
        assert status == 200
        (mon,) = full["monitor_sessions"]
        assert mon["supervisor"] == "supervisor1" and mon["initial_mode"] == "monitor"
        assert [(c["mode"], c["by"]) for c in mon["mode_changes"]] == [("barge", "supervisor1"),
                                                                       ("coach", "supervisor1")]
        assert row["connected"] <= mon["started"] <= mon["mode_changes"][0]["at"] <= mon["ended"]
        assert "supervisor left" in mon["end_reason"]


async def test_permissions(server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    async with aiohttp.ClientSession() as session:
        await supervised_call(srv, session, base)
        (row,) = (await get(session, base + "/api/contacts"))[1]["contacts"]
        rec = f"{base}/api/contacts/{row['contact_id']}/recording"
        for url in (base + "/api/contacts", f"{base}/api/contacts/{row['contact_id']}", rec):
            async with session.get(url) as r:
                assert r.status == 401
            status, body = await get(session, url, {"Authorization": "Bearer agent1"})
            assert status == 403, url
        # monitor-only supervisors search contacts but may not download recordings
        assert (await get(session, base + "/api/contacts", {"Authorization": "Bearer monitoronly1"}))[0] == 200
        status, body = await get(session, rec, {"Authorization": "Bearer monitoronly1"})
        assert status == 403 and "recordings_download" in body["reason"]
        async with session.get(rec + "?token=supervisor1") as r:  # an <audio src> sends no header
            assert r.status == 200 and r.headers["Content-Type"] == "audio/ogg"


async def test_recording_range_requests(server: tuple[BargeinServer, str], tmp_path: Path) -> None:
    srv, base = server
    async with aiohttp.ClientSession() as session:
        await supervised_call(srv, session, base)
        (row,) = (await get(session, base + "/api/contacts"))[1]["contacts"]
        path = tmp_path / row["recording_path"]
        import asyncio

        assert await asyncio.to_thread(srv.contacts.recorder.writer.sync)
        data = path.read_bytes()
        url = f"{base}/api/contacts/{row['contact_id']}/recording"
        async with session.get(url, headers=SUP) as r:
            assert r.status == 200 and await r.read() == data
            assert r.headers["Accept-Ranges"] == "bytes"
        async with session.get(url, headers={**SUP, "Range": "bytes=0-99"}) as r:
            assert r.status == 206 and await r.read() == data[:100]
            assert r.headers["Content-Range"] == f"bytes 0-99/{len(data)}"
        async with session.get(url, headers={**SUP, "Range": "bytes=100-"}) as r:
            assert r.status == 206 and await r.read() == data[100:]
        async with session.get(url, headers={**SUP, "Range": f"bytes={len(data) + 10}-"}) as r:
            assert r.status == 416
    with av.open(str(path)) as f:  # what was served is a real stereo Opus recording
        assert f.streams.audio[0].codec_context.channels == 2 and sum(1 for _ in f.decode(audio=0)) > 0


def seed(srv: BargeinServer, n: int, t0: float) -> list[Contact]:
    rows = []
    for i in range(n):
        t = t0 + i
        c = Contact(contact_id=new_id(t), call_id=f"call-{i}", channel="chat" if i % 5 == 0 else "voice",
                    queue="sales" if i % 2 else "support", customer=f"customer{i}", agent=f"agent{i % 3}",
                    initiated=t, connected=t + 0.5)
        srv.contacts.store.save_contact(c)
        rows.append(c)
    return rows


async def test_filters_and_pages(server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    t0 = 1_700_000_000.0
    rows = seed(srv, 30, t0)
    await srv.contacts.store.flush()
    async with aiohttp.ClientSession() as session:
        seen, cursor = [], ""
        while True:
            status, body = await get(session, f"{base}/api/contacts?limit=7&cursor={cursor}")
            assert status == 200
            seen += [r["contact_id"] for r in body["contacts"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert seen == [r.contact_id for r in reversed(rows)]  # newest first, each once
        q = f"{base}/api/contacts?queue=sales&agent=agent1&channel=voice&from={t0 + 5}&to={t0 + 25}"
        got = [r["call_id"] for r in (await get(session, q))[1]["contacts"]]
        want = [r.call_id for r in reversed(rows) if r.queue == "sales" and r.agent == "agent1"
                and r.channel == "voice" and t0 + 5 <= r.initiated < t0 + 25]
        assert got == want and got
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 20))
        got = (await get(session, f"{base}/api/contacts?from={iso}&limit=500"))[1]["contacts"]
        assert len(got) == 10
        for bad, field in (("limit=0", "limit"), ("from=yesterday", "from"), ("channel=fax", "channel"),
                           ("cursor=x", "cursor"), ("colour=red", "colour")):
            status, body = await get(session, f"{base}/api/contacts?{bad}")
            assert status == 400 and field in body["reason"], (bad, body)
        status, body = await get(session, f"{base}/api/contacts/{new_id(1)}")
        assert status == 404
        status, body = await get(session, f"{base}/api/contacts/{rows[0].contact_id}/recording")
        assert status == 404 and "no recording" in body["reason"]


async def test_transcript_is_stored_as_json(server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    async with aiohttp.ClientSession() as session:
        agent = await sign_in(base + "/ws", "agent1", session=session, state="available")
        customer = await sign_in(base + "/ws", "customer1", session=session)
        call_id = await place_call(customer, agent)
        messages = [{"at": 1.0, "from": "customer1", "text": "hello ✓"}, {"at": 2.0, "from": "agent1", "text": "hi"}]
        path = await srv.contacts.save_transcript(call_id, messages)
        assert path is not None and json.loads(path.read_text())["messages"] == messages
        await srv.contacts.store.flush()
        (row,) = (await get(session, base + "/api/contacts"))[1]["contacts"]
        status, body = await get(session, f"{base}/api/contacts/{row['contact_id']}/transcript")
        assert status == 200 and body["messages"] == messages and body["contact_id"] == row["contact_id"]
        assert await srv.contacts.save_transcript("call-unknown", messages) is None


async def test_retention_deletes_old_contacts_and_their_files(tmp_path: Path, database_url: str | None) -> None:
    srv = BargeinServer(Settings(port=0, data_dir=tmp_path, retention_days=1, database_url=database_url))
    async with serving(srv):
        now = time.time()
        old, new = seed(srv, 2, now - 3 * 86400), seed(srv, 1, now - 3600)
        for c in (*old, *new):
            c.recording_path = f"recordings/{c.contact_id}.ogg"
            (tmp_path / c.recording_path).parent.mkdir(exist_ok=True)
            (tmp_path / c.recording_path).write_bytes(b"x")
            srv.contacts.store.save_contact(c)
            srv.contacts.store.save_monitor(MonitorSession(session_id=new_id(c.initiated), contact_id=c.contact_id,
                                                           supervisor="supervisor1", started=c.initiated,
                                                           initial_mode="monitor"))
        await srv.contacts.store.flush()
        assert await srv.contacts.expire() == 2
        assert [c.contact_id for c in (await srv.contacts.store.search(_all()))[0]] == [new[0].contact_id]
        assert await srv.contacts.store.get(old[0].contact_id) is None
        assert not (tmp_path / old[0].recording_path).exists() and (tmp_path / new[0].recording_path).exists()
        found = await srv.contacts.store.get(new[0].contact_id)
        assert found is not None and len(found[1]) == 1


def _all():  # noqa: ANN202
    from bargein.signaling.contact_models import ContactQuery

    return ContactQuery(limit=500)
