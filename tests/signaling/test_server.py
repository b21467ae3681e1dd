"""The real server on 127.0.0.1 with several real WebSocket clients."""

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from bargein.mixer import SupervisorMode
from bargein.signaling.client import SignalingClient, place_call, sign_in
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings


@pytest.fixture
async def server() -> AsyncIterator[tuple[BargeinServer, str]]:
    srv = BargeinServer(Settings(port=0))
    async with serving(srv) as base:
        yield srv, base


async def full_call(srv: BargeinServer, session: aiohttp.ClientSession, base: str) -> None:
    """Customer calls, agent answers, supervisor monitors and barges; the mixer follows; agent hangs up."""
    url = base + "/ws"
    agent = await sign_in(url, "agent1", session=session, state="available")
    customer = await sign_in(url, "customer1", session=session)
    call_id = await place_call(customer, agent)
    sup = await sign_in(url, "supervisor1", session=session)
    r = await sup.request("INVITE", to=f"call:{call_id}")
    assert r["status"] == 200
    legs = srv.engine.legs_of(call_id)
    gains = srv.engine.gains_of(call_id)  # order: customer, agent, supervisor
    assert [srv.engine.routing_of(x).role.value for x in legs] == ["customer", "agent", "supervisor"]
    assert gains[0, 2] == 0 and gains[1, 2] == 0 and gains[2, 0] == 1 and gains[2, 1] == 1
    assert (await sup.request("INFO", call_id=call_id, action="mode", mode="barge"))["status"] == 200
    gains = srv.engine.gains_of(call_id)
    assert gains[0, 2] == 1 and gains[1, 2] == 1
    assert srv.engine.routing_of(legs[2]).mode is SupervisorMode.BARGE
    assert (await agent.request("BYE", call_id=call_id))["status"] == 200
    ended = await sup.expect("NOTIFY", event="session-ended")
    assert "agent ended the call" in ended["reason"]
    assert srv.engine.call_count == 0
    for c in (agent, customer, sup):
        await c.close()


async def test_full_call_over_real_websockets(server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    async with aiohttp.ClientSession() as session:
        await full_call(srv, session, base)
        async with session.get(base + "/healthz") as r:
            assert (await r.json())["status"] == "ok"


async def test_rest_views_need_access_metrics(server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/api/agents") as r:
            assert r.status == 401
        async with session.get(base + "/api/agents", headers={"Authorization": "Bearer agent1"}) as r:
            assert r.status == 403 and "access_metrics" in (await r.json())["reason"]
        async with session.get(base + "/api/agents?token=supervisor1") as r:
            assert r.status == 200
            rows = (await r.json())["agents"]
            assert {row["agent"] for row in rows} >= {"agent1", "agent2"}
        async with session.get(base + "/api/calls", headers={"Authorization": "Bearer supervisor1"}) as r:
            assert r.status == 200 and (await r.json())["calls"] == []
        async with session.get(base + "/metrics") as r:
            assert "bargein_mixer_ticks_total" in await r.text()


async def test_bad_input_gets_errors_and_connection_survives(server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(base + "/ws")
        cases = [
            ("{not json", 400, "malformed JSON"),
            ("[1,2]", 400, "JSON object"),
            (json.dumps({"method": "FROB", "cseq": 1}), 405, "unknown method 'FROB'"),
            (json.dumps({"method": "REGISTER"}), 400, "missing field 'cseq'"),
            (json.dumps({"method": "REGISTER", "cseq": 2}), 400, "missing field 'token'"),
            (json.dumps({"method": "REGISTER", "cseq": 3, "token": "x", "evil": 1}), 400, "unexpected field 'evil'"),
            (json.dumps({"method": "REGISTER", "cseq": "four", "token": "x"}), 400, "field 'cseq'"),
            (json.dumps({"method": "OPTIONS", "cseq": 5}), 401, "REGISTER"),
            ("x" * 70000, 413, "at most"),
            (json.dumps({"method": "REGISTER", "cseq": 6, "token": "nobody"}), 401, "unknown token"),
        ]
        for raw, status, words in cases:
            await ws.send_str(raw)
            r = await asyncio.wait_for(ws.receive_json(), 5)
            assert r["status"] == status and words in r["reason"], (raw[:40], r)
        await ws.send_str(json.dumps({"method": "REGISTER", "cseq": 10, "token": "supervisor1"}))
        assert (await asyncio.wait_for(ws.receive_json(), 5))["status"] == 200
        await ws.send_str(json.dumps({"method": "OPTIONS", "cseq": 3}))  # replay of an old cseq
        r = await asyncio.wait_for(ws.receive_json(), 5)
        assert r["status"] == 400 and "cseq" in r["reason"]
        c = SignalingClient.over_websocket(ws, first_cseq=11)  # the same connection goes on with the client
        assert (await c.request("INFO", call_id="call-404", action="mode", mode="barge"))["status"] == 481
        assert (await c.request("INVITE", to="call:nope"))["status"] == 404
        assert (await c.request("INVITE", to="queue:support"))["status"] == 403
        await c.close()
        await full_call(srv, session, base)  # everything still works


async def test_flood_is_rate_limited_and_connection_stays(server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    async with aiohttp.ClientSession() as session:
        c = await sign_in(base + "/ws", "supervisor2", session=session)
        flood = [await c.send("OPTIONS") for _ in range(400)]
        statuses = [(await tx.final())["status"] for tx in flood]
        assert 429 in statuses and 200 in statuses
        await asyncio.sleep(0.5)  # tokens refill
        assert (await c.request("OPTIONS"))["status"] == 200
        await c.close()


async def test_dropped_websocket_frees_legs(server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    async with aiohttp.ClientSession() as session:
        url = base + "/ws"
        agent = await sign_in(url, "agent2", session=session, state="available")
        customer = await sign_in(url, "customer2", session=session)
        call_id = await place_call(customer, agent)
        sup = await sign_in(url, "supervisor1", session=session)
        assert (await sup.request("INVITE", to=f"call:{call_id}"))["status"] == 200
        await sup.close()  # supervisor vanishes: leaves, call goes on
        for _ in range(50):
            if srv.engine.leg_count == 2:
                break
            await asyncio.sleep(0.05)
        assert len(srv.engine.legs_of(call_id)) == 2
        await agent.close()  # agent vanishes: the call ends
        bye = await customer.expect("BYE")
        assert bye["call_id"] == call_id
        assert srv.engine.call_count == 0
        await customer.close()


async def test_ring_timeout_fires_without_polling() -> None:
    """The server sleeps until the core's next deadline (none when idle, so a request must wake it):
    the unanswered agent is CANCELled and the customer gets 408."""
    srv = BargeinServer(Settings(port=0, ring_timeout_s=0.2))
    async with serving(srv) as base, aiohttp.ClientSession() as session:
        agent = await sign_in(base + "/ws", "agent1", session=session, state="available")
        customer = await sign_in(base + "/ws", "customer1", session=session)
        assert srv.core.next_deadline() is None
        r = await customer.request("INVITE", to="queue:support")
        assert r["status"] == 408, r
        cancel = await agent.expect("CANCEL")
        assert "did not answer" in cancel["reason"]
        assert srv.core.next_deadline() is None and not srv.core.calls
        await agent.close()
        await customer.close()
