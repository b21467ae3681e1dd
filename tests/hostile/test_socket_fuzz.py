"""The hostile-client suite over a real socket (issue 9): fuzzed frames, wrong-state methods, abrupt disconnects
in every call state; afterwards a normal call with monitor and barge still works and nothing is left behind."""

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from bargein.signaling.client import SignalingClient, place_call, sign_in
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.signaling.test_server import full_call

FIELDS = ["method", "cseq", "type", "token", "to", "sdp", "call_id", "mode", "action", "target", "value",
          "state", "event", "status", "reason"]
FIXED = [
    b"\x00\xff\xfe", "\ud800".encode("utf-8", "surrogatepass"), "{", "[]", "null", "1e999999", "-0",
    '{"method": "INVITE", "cseq": 1e400}', '{"method": "OPTIONS", "cseq": NaN}', '{"cseq": Infinity}',
    '{"method": "OPTIONS", "cseq": 99999999999999999999999999999}', '{"method": "OPTIONS", "cseq": -1}',
    '{"method": "OPTIONS", "cseq": "7"}', '{"method": "OPTIONS", "cseq": true}', '{"method": "OPTIONS", "cseq": 8.0}',
    '{"method": "BYE", "cseq": 3, "call_id": "call-999"}', '{"method": "ACK", "cseq": 4}',
    '{"method": "INFO", "cseq": 5, "call_id": "call-1", "action": "mode", "mode": "barge"}',
    '{"method": "CANCEL", "cseq": 6}', '{"type": "response", "cseq": 1, "method": "INVITE", "status": 200}',
    '{"method": "INVITE", "cseq": 7, "to": "queue:support", "sdp": "v=0\\r\\nm=audio 0 RTP 0\\r\\n"}',
    "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000,
]
scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False,
                   allow_infinity=False), st.text(max_size=40))
frame = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), scalar, max_size=8).map(json.dumps),
    st.binary(max_size=200),
    st.text(max_size=200),
    st.sampled_from(FIXED),
)


@pytest.fixture
async def live() -> AsyncIterator[tuple[BargeinServer, str]]:
    srv = BargeinServer(Settings(port=0, max_requests_per_second=1e6, max_requests_per_second_per_address=1e6))
    async with serving(srv) as base:
        yield srv, base


def cut(client: SignalingClient) -> None:
    """Abort the client's TCP connection, as a crashed browser or a pulled cable would."""
    ws = client._link.ws  # type: ignore[union-attr]
    ws._conn.transport.abort()


def leftovers(srv: BargeinServer) -> list[str]:
    """What a finished test must not leave: calls, mixer legs, connections."""
    out = []
    if srv.core.calls:
        out.append(f"calls {list(srv.core.calls)}")
    if srv.engine.leg_count:
        out.append(f"{srv.engine.leg_count} mixer legs")
    return out


async def settle(srv: BargeinServer) -> None:
    for _ in range(200):
        if not leftovers(srv):
            return
        await asyncio.sleep(0.05)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(batch=st.lists(frame, min_size=20, max_size=60))
async def test_fuzzed_frames_over_a_real_socket_never_close_it(live: tuple[BargeinServer, str],
                                                               batch: list) -> None:
    srv, base = live
    async with aiohttp.ClientSession() as s, s.ws_connect(base + "/ws", max_msg_size=0) as ws:
        await ws.send_json({"method": "REGISTER", "cseq": 1, "token": "agent1"})
        assert (await ws.receive_json(timeout=20))["status"] == 200
        for f in batch:
            await (ws.send_bytes(f) if isinstance(f, bytes) else ws.send_str(f))
        await ws.send_json({"method": "OPTIONS", "cseq": 2**52})
        while True:  # every frame got an answer or was ignored; the socket is still open and answers
            msg = await ws.receive(timeout=20)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            data = json.loads(msg.data)
            assert data.get("status", 200) < 500, data
            if data.get("cseq") == 2**52:
                assert data["status"] == 200
                break
    await settle(srv)
    assert not leftovers(srv)


@pytest.mark.parametrize("state", ["ringing", "active", "monitored", "barged", "held"])
@pytest.mark.parametrize("who", ["customer", "agent", "supervisor"])
async def test_abrupt_disconnect_in_every_call_state_leaves_nothing(live: tuple[BargeinServer, str],
                                                                   state: str, who: str) -> None:
    srv, base = live
    url = base + "/ws"
    async with aiohttp.ClientSession() as s:
        agent = await sign_in(url, "agent1", session=s, state="available")
        customer = await sign_in(url, "customer1", session=s)
        sup = await sign_in(url, "supervisor1", session=s)
        if state == "ringing":
            await customer.send("INVITE", to="queue:support")
            await agent.expect("INVITE")
        else:
            call_id = await place_call(customer, agent)
            if state in ("monitored", "barged"):
                assert (await sup.request("INVITE", to=f"call:{call_id}"))["status"] == 200
            if state == "barged":
                assert (await sup.request("INFO", call_id=call_id, action="mode", mode="barge"))["status"] == 200
            if state == "held":
                r = await agent.request("INFO", call_id=call_id, action="hold", target="customer1", value=True)
                assert r["status"] == 200, r
        victim = {"customer": customer, "agent": agent, "supervisor": sup}[who]
        cut(victim)  # the transport is cut: no BYE, no close frame
        survivors = [c for c in (agent, customer, sup) if c is not victim]
        for c in survivors:
            await c.close()
        await settle(srv)
        assert not leftovers(srv), (state, who)
        await full_call(srv, s, base)  # and the server still carries a normal call with monitor and barge
        await settle(srv)
        assert not leftovers(srv)
