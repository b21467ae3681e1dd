"""A server leg whose event loop falls behind keeps its peer (signaling/ice_consent.py).

The gateway runs on this test's loop, slowed so that it reads fewer datagrams than arrive: a backlog
builds in its socket, as in a media worker starved of CPU on a loaded machine. The client runs on its
own loop in a thread and answers every consent check at once, but the answers wait behind the audio.
aioice's own check (one try of 0.5 s, six failures in a row) closed the connection after six checks
and the leg was lost: the latency benchmark's lost call. With the fix it stays up.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import aioice.ice
import pytest
from aiortc import RTCPeerConnection
from bargein.mixer import LegRouting, MixerEngine, RealtimeClock, Role
from bargein.signaling import ice_consent
from bargein.signaling.webrtc import WebRTCGateway
from bargein.signaling.webrtc_client import ClientLeg

pytestmark = pytest.mark.slow
T = TypeVar("T")


class LoopThread:
    """An event loop of its own in a thread: a peer that keeps answering while ours is behind."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def consent_installed(pc: RTCPeerConnection) -> bool:
    conn = pc.getTransceivers()[0].sender.transport.transport._connection
    return getattr(conn.query_consent, "func", None) is ice_consent._query_consent


async def answer_delay_s(gateway: WebRTCGateway, leg: int) -> float:
    """How long an answer to a STUN check from the gateway's side takes to be read (the backlog)."""
    conn = gateway.legs[leg].pc.getTransceivers()[0].sender.transport.transport._connection
    pair = next(iter(conn._nominated.values()))
    t0 = time.monotonic()
    await pair.protocol.request(conn.build_request(pair, nominate=False), pair.remote_addr,
                                integrity_key=conn.remote_password.encode(), retransmissions=8)
    return time.monotonic() - t0


async def test_consent_holds_while_our_loop_reads_its_socket_late(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 1)  # faster checks, either implementation
    monkeypatch.setattr(ice_consent, "CONSENT_INTERVAL_S", 1.0)
    engine = MixerEngine(rate=48000)
    clock = RealtimeClock(engine.tick)
    gateway = WebRTCGateway(silent_peer_s=60.0)
    lost: list[int] = []
    gateway.attach(engine, clock, lost.append)
    clock.start()
    peer = LoopThread()
    dragging = True
    client: ClientLeg | None = None
    try:
        async def dial() -> tuple[ClientLeg, str]:
            client = ClientLeg(500.0)
            return client, await client.offer()

        client, offer = await peer.run(dial())
        assert consent_installed(client.pc)
        leg = engine.add_leg("call-1", LegRouting(Role.CUSTOMER))
        await peer.run(client.accept(await gateway.open_leg(leg, "call-1", offer)))
        assert consent_installed(gateway.legs[leg].pc)
        for _ in range(600):  # failure guard only: media flows both ways
            if gateway.legs[leg].frames_in > 25 and client.frames > 25:
                break
            await asyncio.sleep(0.05)
        assert gateway.legs[leg].frames_in > 25 and client.frames > 25

        loop = asyncio.get_running_loop()

        def drag() -> None:  # every loop iteration takes 25 ms: one datagram read per socket each time
            time.sleep(0.025)
            if dragging:
                loop.call_soon(drag)

        loop.call_soon(drag)
        await asyncio.sleep(4.0)
        delay = await answer_delay_s(gateway, leg)
        assert delay > 0.5, f"no backlog to test with: answers read after {delay:.2f} s"  # aioice's window
        await asyncio.sleep(12.0)  # twelve more checks: aioice's check gives up after six
        assert not lost and gateway.legs[leg].pc.connectionState == "connected"
        received = gateway.legs[leg].frames_in
        dragging = False
        for _ in range(600):  # caught up: audio still arrives (failure guard only)
            if gateway.legs[leg].frames_in > received + 50:
                break
            await asyncio.sleep(0.05)
        assert gateway.legs[leg].frames_in > received + 50 and not lost
        assert await peer.run(_state(client)) == "connected"
    finally:
        dragging = False
        await gateway.close()
        await clock.stop()
        if client is not None:
            await peer.run(client.close())
        peer.stop()


async def _state(client: ClientLeg) -> str:
    return client.pc.connectionState
