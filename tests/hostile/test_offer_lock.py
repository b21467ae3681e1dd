"""A slow SDP negotiation holds up nobody else's signaling (issue 9 item 2): a real server, a stalled gateway."""

import asyncio

import aiohttp
from bargein.signaling.gateway import MediaGateway
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings
from helpers.inprocess import offer


class StalledGateway(MediaGateway):
    """Answers no offer until released: a negotiation that takes as long as the test wants."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.opened: list[int] = []
        self.closed: list[int] = []

    async def open_leg(self, leg: int, call_id: str, offer_sdp: str) -> str:
        self.opened.append(leg)
        await self.release.wait()
        return "v=0\r\n"

    async def close_leg(self, leg: int) -> None:
        self.closed.append(leg)


async def test_other_clients_are_served_while_an_offer_is_being_answered() -> None:
    gw = StalledGateway()
    srv = BargeinServer(Settings(port=0), gateway=gw)
    async with serving(srv) as base, aiohttp.ClientSession() as s:
        agent = await s.ws_connect(base + "/ws")
        await agent.send_json({"method": "REGISTER", "cseq": 1, "token": "agent1"})
        assert (await agent.receive_json(timeout=10))["status"] == 200
        await agent.send_json({"method": "PUBLISH", "cseq": 2, "state": "available"})
        assert (await agent.receive_json(timeout=10))["status"] == 200
        customer = await s.ws_connect(base + "/ws")
        await customer.send_json({"method": "REGISTER", "cseq": 1, "token": "customer1"})
        assert (await customer.receive_json(timeout=10))["status"] == 200
        await customer.send_json({"method": "INVITE", "cseq": 2, "to": "queue:support", "sdp": offer("c")})
        while not gw.opened:  # the customer's offer is now stuck in the gateway
            await asyncio.sleep(0.01)
        other = await s.ws_connect(base + "/ws")
        await other.send_json({"method": "REGISTER", "cseq": 1, "token": "supervisor1"})
        r = await asyncio.wait_for(other.receive_json(), 30)  # before the fix: blocked behind the lock
        assert r["status"] == 200
        gw.release.set()
        for ws in (agent, customer, other):
            await ws.close()
