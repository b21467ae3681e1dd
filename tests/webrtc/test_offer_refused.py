"""Issue 9 item 10: after a final response no provisional ever follows, and nobody is rung for a call whose
offer was refused. A real server with the real WebRTC gateway: aiortc cannot answer an offer that passes the
cheap SDP check but has no ICE credentials, so the customer gets 488."""

import asyncio

import aiohttp
from bargein.signaling.messages import is_final
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings
from bargein.signaling.webrtc import WebRTCGateway
from helpers.inprocess import offer


async def until_final(ws: aiohttp.ClientWebSocketResponse, cseq: int) -> list[dict]:
    """Every frame up to the final response to ``cseq`` (frames to one client arrive in order)."""
    got = []
    while True:
        msg = await asyncio.wait_for(ws.receive_json(), 20)
        got.append(msg)
        if msg.get("type") == "response" and msg.get("cseq") == cseq and is_final(msg["status"]):
            return got


async def test_488_is_final_and_no_agent_is_rung() -> None:
    srv = BargeinServer(Settings(port=0), WebRTCGateway())
    async with serving(srv) as base, aiohttp.ClientSession() as session:
        agent, customer = await session.ws_connect(base + "/ws"), await session.ws_connect(base + "/ws")
        await agent.send_json({"method": "REGISTER", "cseq": 1, "token": "agent1"})
        await agent.send_json({"method": "PUBLISH", "cseq": 2, "state": "available"})
        await until_final(agent, 2)
        await customer.send_json({"method": "REGISTER", "cseq": 1, "token": "customer1"})
        await until_final(customer, 1)
        await customer.send_json({"method": "INVITE", "cseq": 2, "to": "queue:support", "sdp": offer("customer")})
        # a request after the INVITE: its answer comes after everything the INVITE caused
        await customer.send_json({"method": "OPTIONS", "cseq": 3})
        frames = await until_final(customer, 3)
        invite = [f["status"] for f in frames if f.get("cseq") == 2]
        assert invite == [100, 488], frames
        await agent.send_json({"method": "OPTIONS", "cseq": 3})
        to_agent = await until_final(agent, 3)
        assert [f for f in to_agent if f.get("type") == "request" and f.get("method") != "NOTIFY"] == [], to_agent
        assert not srv.core.calls and srv.engine.call_count == 0
        await agent.close()
        await customer.close()
