"""Two server instances (a cluster's nodes) keep their contacts in one real PostgreSQL database and their
recordings and transcripts in one shared folder: contact search, a recording and a transcript are
served by either node, whichever node's call made them."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import av
import pytest
from bargein.signaling.client import place_call, sign_in
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings

SUP = {"Authorization": "Bearer supervisor1"}


@pytest.fixture
async def nodes(tmp_path: Path, postgres_url: str) -> AsyncIterator[list[tuple[BargeinServer, str]]]:
    shared = tmp_path / "shared"  # shared storage in production; one folder here
    async with AsyncExitStack() as stack:
        out = []
        for name in ("a", "b"):
            srv = BargeinServer(Settings(port=0, data_dir=tmp_path / name, database_url=postgres_url,
                                         recordings_dir=shared / "recordings",
                                         transcripts_dir=shared / "transcripts"))
            out.append((srv, await stack.enter_async_context(serving(srv))))
        yield out


async def call_on(srv: BargeinServer, base: str, session: aiohttp.ClientSession, n: int) -> str:
    """customer<n> calls agent<n> on this node, supervisor1 monitors; the agent hangs up."""
    agent = await sign_in(base + "/ws", f"agent{n}", session=session, state="available")
    customer = await sign_in(base + "/ws", f"customer{n}", session=session)
    call_id = await place_call(customer, agent)
    sup = await sign_in(base + "/ws", "supervisor1", session=session)
    assert (await sup.request("INVITE", to=f"call:{call_id}"))["status"] == 200
    for _ in range(25):
        await srv.clock.wait_tick()
    assert (await agent.request("BYE", call_id=call_id))["status"] == 200
    for c in (agent, customer, sup):
        await c.close()
    assert await asyncio.to_thread(srv.contacts.recorder.writer.sync)
    await srv.contacts.store.flush()
    return call_id


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with session.get(url, headers=SUP) as r:
        return r.status, await r.json()


async def test_contact_search_recordings_and_transcripts_from_any_node(
        nodes: list[tuple[BargeinServer, str]], tmp_path: Path) -> None:
    (a, base_a), (b, base_b) = nodes
    async with aiohttp.ClientSession() as session:
        on_a = await call_on(a, base_a, session, 1)
        on_b = await call_on(b, base_b, session, 2)
        # a chat-like transcript written by node a, while its contact is live there
        agent = await sign_in(base_a + "/ws", "agent3", session=session, state="available")
        customer = await sign_in(base_a + "/ws", "customer3", session=session)
        chat_call = await place_call(customer, agent)
        messages = [{"at": 1.0, "from": "customer3", "text": "bonjour"}]
        assert await a.contacts.save_transcript(chat_call, messages) is not None
        assert (await agent.request("BYE", call_id=chat_call))["status"] == 200
        for c in (agent, customer):
            await c.close()
        await a.contacts.store.flush()

        views = []
        for base in (base_a, base_b):
            status, body = await get(session, base + "/api/contacts")
            assert status == 200
            views.append(body["contacts"])
        assert views[0] == views[1]  # the same rows, whichever node is asked
        by_agent = {r["agent"]: r for r in views[0]}
        assert set(by_agent) == {"agent1", "agent2", "agent3"}
        assert by_agent["agent1"]["call_id"] == on_a and by_agent["agent2"]["call_id"] == on_b
        for base in (base_a, base_b):  # each node also finds the other's monitor session
            status, full = await get(session, f"{base}/api/contacts/{by_agent['agent2']['contact_id']}")
            assert status == 200 and [m["supervisor"] for m in full["monitor_sessions"]] == ["supervisor1"]

        # recordings land in the shared folder, not in the node's data folder, and either node serves them
        for agent_name in ("agent1", "agent2"):
            row = by_agent[agent_name]
            assert row["recording_path"] == f"recordings/{row['contact_id']}.ogg"
            on_disk = tmp_path / "shared" / row["recording_path"]
            assert on_disk.is_file() and not (tmp_path / "a" / row["recording_path"]).exists()
            assert not (tmp_path / "b" / row["recording_path"]).exists()
            with av.open(str(on_disk)) as f:
                assert sum(fr.samples for fr in f.decode(audio=0)) > 0
            for base in (base_a, base_b):
                async with session.get(f"{base}/api/contacts/{row['contact_id']}/recording", headers=SUP) as r:
                    assert r.status == 200 and await r.read() == on_disk.read_bytes()
        chat_row = by_agent["agent3"]
        assert (tmp_path / "shared" / chat_row["transcript_path"]).is_file()
        status, body = await get(session, f"{base_b}/api/contacts/{chat_row['contact_id']}/transcript")
        assert status == 200 and body["messages"] == messages
