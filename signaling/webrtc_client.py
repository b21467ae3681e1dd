"""A client-side WebRTC leg (aiortc) that sends a tone and records what it hears.

The one tone client of the project: the simulator's server mode and the tests use it as the
:class:`~bargein.signaling.client.Media` of a :class:`~bargein.signaling.client.SignalingClient` call,
then measure who is heard with :meth:`ClientLeg.level` (single-bin DFT at each speaker's frequency).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections import deque

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from bargein.mixer.tones import level_dbfs, tone

from .webrtc import no_ice_servers

RATE, SAMPLES = 48000, 960


class ToneTrack(MediaStreamTrack):
    """A sine at ``freq`` Hz, paced to real time (aiortc does not pace audio)."""

    kind = "audio"

    def __init__(self, freq: float, amplitude: float = 0.25) -> None:
        super().__init__()
        self.freq, self.amplitude = freq, amplitude
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        self._start = self._start or now
        due = self._start + self._n * 0.02
        if due > now:
            await asyncio.sleep(due - now)
        pcm = tone(self.freq, RATE, SAMPLES, self.amplitude, start=self._n * SAMPLES)
        frame = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate, frame.pts, frame.time_base = RATE, self._n * SAMPLES, fractions.Fraction(1, RATE)
        self._n += 1
        return frame


class ClientLeg:
    """One browser-like endpoint: offer with a tone, then listen."""

    def __init__(self, freq: float, keep_frames: int = 25, amplitude: float = 0.25) -> None:
        """``amplitude`` 0 sends silence (a party that says nothing)."""
        self.pc = RTCPeerConnection(no_ice_servers())
        self.pc.addTrack(ToneTrack(freq, amplitude))
        self.heard: deque[np.ndarray] = deque(maxlen=keep_frames)
        self.frames = 0
        self._task: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._task = asyncio.get_running_loop().create_task(self._drain(track))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def _drain(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                for out in resampler.resample(frame):
                    self.heard.append(out.to_ndarray().reshape(-1).copy())
                    self.frames += 1

    def level(self, freq: float, frames: int = 15) -> float:
        """dBFS of ``freq`` over the last ``frames`` frames received."""
        recent = list(self.heard)[-frames:]
        if not recent:
            return -200.0
        return level_dbfs(np.concatenate(recent), freq, RATE)

    async def fresh(self, frames: int = 20, timeout: float = 10) -> None:
        """Wait until ``frames`` new frames have arrived (what was heard before a change is flushed)."""
        target = self.frames + frames
        deadline = time.monotonic() + timeout
        while self.frames < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.frames - target + frames} of {frames} frames arrived")
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
        await self.pc.close()
