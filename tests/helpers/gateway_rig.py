"""A WebRTCGateway wired straight to a MixerEngine and RealtimeClock, with real aiortc client legs
joining over loopback: the media path without signaling (tests only)."""

from __future__ import annotations

from bargein.mixer import LegRouting, MixerEngine, RealtimeClock, Role
from bargein.signaling.webrtc import WebRTCGateway
from bargein.signaling.webrtc_client import ClientLeg


class GatewayRig:
    def __init__(self, rate: int = 48000, silent_peer_s: float = 5.0, shared_encode: bool = True,
                 encode_inline: bool = False) -> None:
        self.engine = MixerEngine(rate=rate)
        self.clock = RealtimeClock(self.engine.tick)
        self.gateway = WebRTCGateway(silent_peer_s=silent_peer_s, shared_encode=shared_encode,
                                     encode_inline=encode_inline)
        self.lost: list[int] = []
        self.gateway.attach(self.engine, self.clock, self.lost.append)
        self.clients: list[ClientLeg] = []

    async def join(self, routing: LegRouting | Role, freq: float) -> tuple[int, ClientLeg]:
        """A client leg sending a tone at ``freq`` joins call-1 (a role alone: its default routing)."""
        leg = self.engine.add_leg("call-1", routing if isinstance(routing, LegRouting) else LegRouting(routing))
        client = ClientLeg(freq)
        self.clients.append(client)
        await client.accept(await self.gateway.open_leg(leg, "call-1", await client.offer()))
        return leg, client

    async def close(self) -> None:
        for c in self.clients:
            await c.close()
        await self.gateway.close()
        await self.clock.stop()
