"""Cheap load callers for the capacity benchmark: aiortc legs whose audio packets go through bargein's
direct RTP path once the call is up.

A load call's two :class:`~bargein.signaling.webrtc_client.ClientLeg` s set up the call as any aiortc client
does (ICE, DTLS-SRTP, the SDP exchange through the server), but aiortc's sender is given a track that never
yields a frame: as soon as the leg's DTLS is up, :meth:`DirectCallers.go_direct` sends its RTP with
:class:`~bargein.signaling.rtp_direct.DirectRtp` (aiortc keeps ICE, DTLS, RTCP and consent; its sender never
sent a packet, so SRTP sees one unbroken sequence). The leg's tone is encoded once (a cycle of Opus packets)
and replayed every 20 ms by one pacing task per process, and what the leg receives is unprotected, parsed
and counted but not decoded; the leg is up once packets from the server have arrived. Per leg that is a few percent of a core less than aiortc's encoder, sender task,
jitter buffer and decoder thread, so the callers no longer starve the server they load on a small
machine. The server sees the same packets either way: Opus from a fixed SSRC, paced at 20 ms.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiortc import MediaStreamTrack
from bargein.mixer.tones import tone
from bargein.signaling import libopus
from bargein.signaling.rtp_direct import UNAVAILABLE, DirectRtp
from bargein.signaling.webrtc_client import RATE, SAMPLES, ClientLeg

CYCLE = 50  # packets encoded per tone (one second), replayed in a loop


class Silent(MediaStreamTrack):
    """aiortc's sender's track on a direct leg: never yields a frame (the direct path sends instead)."""

    kind = "audio"

    async def recv(self) -> Any:
        await asyncio.Event().wait()


class _Counted:
    """The inbound end of a direct leg (an ``InboundAudio``): packets counted, not decoded (no decoder: the
    direct path hands over payloads, not PCM)."""

    decoder = None

    def __init__(self) -> None:
        self.packets = 0

    def add_payload(self, timestamp: int, data: bytes) -> None:
        self.packets += 1

    def add_pcm(self, timestamp: int, pcm: object, decode_failed: bool = False) -> None:
        self.packets += 1


def _tone_packets(freq: float, amplitude: float) -> list[bytes]:
    enc = libopus.Encoder(RATE, 1, bit_rate=32000)  # what a browser sends: 32 kbit/s voice
    return [enc.encode(tone(freq, RATE, SAMPLES, amplitude, start=k * SAMPLES)) for k in range(CYCLE)]


class DirectCallers:
    """The direct legs of one caller process and the task that paces their packets."""

    def __init__(self) -> None:
        self.legs: list[tuple[DirectRtp, list[bytes], _Counted]] = []
        self._packets: dict[tuple[float, float], list[bytes]] = {}
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def leg() -> ClientLeg:
        """A leg for :meth:`go_direct` (aiortc's sender on it never sends)."""
        return ClientLeg(0.0, keep_frames=2, track=Silent())  # type: ignore[arg-type]

    async def go_direct(self, leg: ClientLeg, freq: float, amplitude: float = 0.25, timeout: float = 120) -> None:
        """Send ``freq`` on ``leg`` (made by :meth:`leg`, its call answered) as soon as its DTLS is up, and
        return once packets from the server arrive; raises when aiortc's internals do not allow it."""
        key = (freq, amplitude)
        if key not in self._packets:
            self._packets[key] = _tone_packets(*key)
        counted = _Counted()
        deadline = time.monotonic() + timeout
        while (direct := DirectRtp.attach(leg.pc, counted, SAMPLES, RATE)) is None:
            if time.monotonic() > deadline:
                raise TimeoutError("the leg's DTLS did not come up")
            await asyncio.sleep(0.02)
        if direct is UNAVAILABLE:
            raise RuntimeError("aiortc's internals are not the pinned ones: no direct path for callers")
        self.legs.append((direct, self._packets[key], counted))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pace())
        while counted.packets < 5:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{counted.packets} packets from the server")
            await asyncio.sleep(0.02)

    async def _pace(self) -> None:
        start, n = time.monotonic(), 0
        while True:
            n += 1
            delay = start + n * 0.02 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.2:  # this process stalled: go on from now rather than burst
                start, n = time.monotonic(), 0
            k = n % CYCLE
            for direct, packets, _ in self.legs:
                direct.send(packets[k])

    def received(self) -> int:
        return sum(c.packets for _, _, c in self.legs)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for direct, _, _ in self.legs:
            direct.detach()
