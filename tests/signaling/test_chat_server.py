"""Chat contacts over real WebSockets on 127.0.0.1: customer, agent, monitoring and barging supervisors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from bargein.mixer.limits import CallLimits
from bargein.signaling.client import SignalingClient, sign_in
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def open_chat(url: str, session: aiohttp.ClientSession, customer: str = "customer1",
                    agent: SignalingClient | None = None) -> tuple[SignalingClient, SignalingClient, str]:
    agent = agent or await sign_in(url, "agent1", session=session, state="available")
    cust = await sign_in(url, customer, session=session)
    tx = await cust.send("INVITE", to="queue:support", channel="chat")
    offer = await agent.expect("INVITE")
    assert offer["channel"] == "chat"
    await agent.respond(offer, 200)
    final = await tx.final()
    assert final["status"] == 200, final
    await agent.expect("ACK", call_id=final["contact_id"])
    return cust, agent, final["contact_id"]


def names_a_supervisor(frame: dict) -> bool:
    text = str(frame).lower()
    return any(name in text for name in ("supervisor1", "supervisor 1", "supervisor2", "supervisor 2"))


async def test_chat_with_late_monitor_then_barge_then_agent_bye(session: aiohttp.ClientSession) -> None:
    srv = BargeinServer(Settings(port=0))
    async with serving(srv) as base:
        url = base + "/ws"
        cust, agent, cid = await open_chat(url, session)
        assert (await cust.request("MESSAGE", contact_id=cid, text="my order is late"))["status"] == 200
        got = await agent.expect("MESSAGE")
        assert (got["seq"], got["from"], got["text"]) == (1, "customer", "my order is late")
        r = await agent.request("MESSAGE", contact_id=cid, text="let me check")
        assert (r["status"], r["seq"]) == (200, 2)
        assert (await cust.expect("MESSAGE"))["display"] == "Agent 1"

        sup = await sign_in(url, "supervisor1", session=session)
        view = await sup.request("SUBSCRIBE", event="agents")
        assert view["status"] == 200
        rows = (await sup.expect("NOTIFY", event="agents"))["agents"]
        row = next(x for x in rows if x["agent"] == "agent1")
        assert row["chat_count"] == 1 and row["chats"][0]["contact_id"] == cid
        joined = await sup.request("INVITE", to=f"chat:{cid}")  # joins late: the whole transcript
        assert joined["status"] == 200
        assert [(e["seq"], e["text"]) for e in joined["transcript"]] == [(1, "my order is late"), (2, "let me check")]
        await cust.request("MESSAGE", contact_id=cid, text="thanks")
        live = await sup.expect("MESSAGE")
        assert (live["seq"], live["text"]) == (3, "thanks")
        assert (await agent.expect("MESSAGE"))["text"] == "thanks"
        assert (await sup.request("MESSAGE", contact_id=cid, text="x"))["status"] == 403  # read-only
        assert (await sup.request("INFO", call_id=cid, action="mode", mode="barge"))["status"] == 200
        assert (await sup.request("MESSAGE", contact_id=cid, text="we sent a voucher"))["status"] == 200
        to_cust = await cust.expect("MESSAGE")
        to_agent = await agent.expect("MESSAGE")
        assert to_cust["text"] == to_agent["text"] == "we sent a voucher"
        assert to_cust["from"] == "supervisor" and to_cust["display"] == "Supervisor"
        assert not names_a_supervisor(to_cust)
        assert to_agent["user"] == "supervisor1"

        assert (await agent.request("BYE", call_id=cid))["status"] == 200
        ended = await sup.expect("NOTIFY", event="session-ended")
        assert ended["contact_id"] == cid and "agent ended the chat" in ended["reason"]
        bye = await cust.expect("BYE")
        assert bye["contact_id"] == cid
        # everything the customer ever received: no supervisor frame, no supervisor name
        await cust.request("OPTIONS")
        rest = [m async for m in _drain(cust)]
        assert all(not names_a_supervisor(m) for m in [to_cust, bye, *rest])
        assert all(m.get("event") not in ("chat-state", "session-ended") for m in rest)
        for c in (cust, agent, sup):
            await c.close()


async def _drain(client: SignalingClient) -> AsyncIterator[dict]:
    while client._inbox:
        yield client._inbox.popleft()


async def test_customer_bye_tells_supervisor_and_agent(session: aiohttp.ClientSession) -> None:
    srv = BargeinServer(Settings(port=0))
    async with serving(srv) as base:
        url = base + "/ws"
        cust, agent, cid = await open_chat(url, session)
        sup = await sign_in(url, "supervisor2", session=session)
        assert (await sup.request("INVITE", to=f"chat:{cid}"))["status"] == 200
        assert (await cust.request("BYE", call_id=cid))["status"] == 200
        assert "customer ended the chat" in (await sup.expect("NOTIFY", event="session-ended"))["reason"]
        assert (await agent.expect("BYE"))["contact_id"] == cid
        assert (await sup.request("INVITE", to=f"chat:{cid}"))["status"] == 404
        for c in (cust, agent, sup):
            await c.close()


async def test_refused_barge_profile_and_switch(session: aiohttp.ClientSession) -> None:
    srv = BargeinServer(Settings(port=0, enhanced_monitoring=False))
    async with serving(srv) as base:
        url = base + "/ws"
        cust, agent, cid = await open_chat(url, session)
        mon = await sign_in(url, "monitoronly1", session=session)
        assert (await mon.request("INVITE", to=f"chat:{cid}"))["status"] == 200
        r = await mon.request("INFO", call_id=cid, action="mode", mode="barge")
        assert r["status"] == 403 and "realtime_barge" in r["reason"]
        sup = await sign_in(url, "supervisor1", session=session)
        r = await sup.request("INVITE", to=f"chat:{cid}", mode="barge")
        assert r["status"] == 403 and "enhanced monitoring is off" in r["reason"]
        for c in (cust, agent, mon, sup):
            await c.close()


async def test_limits_chats_per_agent_and_supervisors(session: aiohttp.ClientSession) -> None:
    srv = BargeinServer(Settings(port=0, max_chats_per_agent=2, limits=CallLimits(max_supervisors=1, max_barging=1)))
    async with serving(srv) as base:
        url = base + "/ws"
        c1, agent, cid = await open_chat(url, session, "customer1")
        c2, _, _ = await open_chat(url, session, "customer2", agent)
        c3 = await sign_in(url, "customer3", session=session)
        r = await c3.request("INVITE", to="queue:support", channel="chat")
        assert r["status"] == 480
        s1 = await sign_in(url, "supervisor1", session=session)
        s2 = await sign_in(url, "supervisor2", session=session)
        assert (await s1.request("INVITE", to=f"chat:{cid}"))["status"] == 200
        r = await s2.request("INVITE", to=f"chat:{cid}")
        assert r["status"] == 486 and "supervisor" in r["reason"]
        for c in (c1, c2, c3, agent, s1, s2):
            await c.close()


async def test_malformed_message_names_the_field(session: aiohttp.ClientSession) -> None:
    srv = BargeinServer(Settings(port=0))
    async with serving(srv) as base:
        url = base + "/ws"
        cust, agent, cid = await open_chat(url, session)
        r = await cust.request("MESSAGE", contact_id=cid, text="")
        assert r["status"] == 400 and "text" in r["reason"]
        r = await cust.request("MESSAGE", contact_id=cid, text="hi", colour="red")
        assert r["status"] == 400 and "colour" in r["reason"]
        r = await cust.request("MESSAGE", text="hi")
        assert r["status"] == 400 and "contact_id" in r["reason"]
        assert (await cust.request("MESSAGE", contact_id=cid, text="still works"))["status"] == 200
        for c in (cust, agent):
            await c.close()
