"""The public asyncio client against the real server (WebSocket and in-process), and its own bookkeeping."""

from collections.abc import AsyncIterator

import pytest
from bargein.signaling.client import (
    ConnectionClosed,
    Refused,
    RequestTimeout,
    SignalingClient,
    is_final,
    place_call,
    sign_in,
)
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings


@pytest.fixture
async def server() -> AsyncIterator[tuple[BargeinServer, str]]:
    srv = BargeinServer(Settings(port=0))
    async with serving(srv) as base:
        yield srv, base.replace("http://", "ws://") + "/ws"


@pytest.mark.parametrize(("status", "final"), [(100, False), (180, False), (183, False), (199, False),
                                               (200, True), (202, True), (487, True), (603, True)])
def test_is_final(status: int, final: bool) -> None:
    assert is_final(status) is final


async def test_sign_in_request_and_refusals(server: tuple[BargeinServer, str]) -> None:
    _, url = server
    with pytest.raises(Refused) as refused:
        await sign_in(url, "nobody")
    assert refused.value.status == 401 and "unknown token" in refused.value.reason
    async with await SignalingClient.connect(url) as sup:
        r = await sup.sign_in("supervisor1")
        assert r["status"] == 200 and sup.user == "supervisor1"
        assert (await sup.request("OPTIONS"))["status"] == 200
        r = await sup.request("INVITE", to="call:nope")  # an error status is a response, not an exception
        assert r["status"] == 404


async def test_request_without_answer_times_out_and_the_client_goes_on(server: tuple[BargeinServer, str]) -> None:
    _, url = server
    async with await sign_in(url, "supervisor1") as sup:
        with pytest.raises(RequestTimeout, match="ACK"):
            await sup.request("ACK", call_id="call-1", timeout=0.2)  # ACK never gets a response
        assert (await sup.request("OPTIONS"))["status"] == 200


async def test_close_fails_pending_requests_and_ends_notifications(server: tuple[BargeinServer, str]) -> None:
    _, url = server
    sup = await sign_in(url, "supervisor1")
    pending = await sup.send("ACK", call_id="call-1")
    await sup.close()
    with pytest.raises(ConnectionClosed, match="closed by the client"):
        await pending.final()
    assert [m async for m in sup.notifications()] == []
    with pytest.raises(ConnectionClosed):
        await sup.request("OPTIONS")


async def test_server_closing_the_connection_fails_pending_requests(server: tuple[BargeinServer, str]) -> None:
    _, url = server
    old = await sign_in(url, "agent1", state="available")
    pending = await old.send("ACK", call_id="call-1")
    new = await sign_in(url, "agent1")  # the server closes the older connection
    with pytest.raises(ConnectionClosed, match="signed in from another connection"):
        await pending.final()
    with pytest.raises(ConnectionClosed):
        await old.expect("INVITE")
    assert old.closed and not new.closed
    await new.close()


async def test_call_between_an_in_process_agent_and_a_websocket_customer(
        server: tuple[BargeinServer, str]) -> None:
    srv, url = server
    agent = await SignalingClient.in_process(srv)
    await agent.sign_in("agent1", state="available")
    customer = await sign_in(url, "customer1")
    call = await customer.send("INVITE", to="queue:support")
    assert (await call.provisional(180))["agent"] == "agent1"
    invite = await agent.answer()
    ok = await call.final()
    assert ok["status"] == 200 and ok["call_id"] == invite["call_id"]
    assert await call.final() is ok  # asking again gives the same answer
    assert len(srv.engine.legs_of(ok["call_id"])) == 2
    await agent.close()  # the agent signs out: the call ends for the customer
    assert (await customer.expect("BYE"))["call_id"] == ok["call_id"]
    assert srv.engine.call_count == 0
    with pytest.raises(ConnectionClosed):
        await agent.request("OPTIONS")
    await customer.close()


async def test_place_call_raises_refused_when_no_agent_is_available(server: tuple[BargeinServer, str]) -> None:
    _, url = server
    agent = await sign_in(url, "agent2", state="away")
    customer = await sign_in(url, "customer2")
    with pytest.raises(Refused) as refused:
        await place_call(customer, agent)
    assert refused.value.status == 480 and refused.value.response["method"] == "INVITE"
    await customer.close()
    await agent.close()


async def test_notifications_are_bounded_oldest_dropped() -> None:
    c = SignalingClient(inbox_limit=3)
    for i in range(5):
        c.feed({"type": "request", "method": "NOTIFY", "cseq": i, "event": "agents"})
    c.feed({"type": "response", "method": "OPTIONS", "cseq": 99, "status": 200})  # nobody asked: ignored
    assert c.dropped == 2
    c.lost("test over")
    assert [m["cseq"] async for m in c.notifications()] == [2, 3, 4]


async def test_expect_picks_a_match_and_keeps_the_rest_in_order() -> None:
    c = SignalingClient()
    for i, event in enumerate(["agents", "call-state", "agents"]):
        c.feed({"type": "request", "method": "NOTIFY", "cseq": i, "event": event})
    assert (await c.expect("NOTIFY", event="call-state"))["cseq"] == 1
    c.lost("test over")
    assert [m["cseq"] async for m in c.notifications()] == [0, 2]


async def test_in_process_connection_closed_by_the_server(server: tuple[BargeinServer, str]) -> None:
    srv, url = server
    local = await SignalingClient.in_process(srv)
    await local.sign_in("supervisor3")
    pending = await local.send("ACK", call_id="call-1")
    replacement = await sign_in(url, "supervisor3")  # signing in elsewhere closes the in-process connection
    with pytest.raises(ConnectionClosed, match="signed in from another connection"):
        await pending.final()
    assert local.closed
    assert (await replacement.request("OPTIONS"))["status"] == 200
    await replacement.close()
