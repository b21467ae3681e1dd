"""A client-side WebRTC leg (aiortc) that sends a tone and records what it hears.

The one tone client of the project: the simulator's server mode and the tests use it as the
:class:`~bargein.signaling.client.Media` of a :class:`~bargein.signaling.client.SignalingClient` call,
then measure who is heard with :meth:`ClientLeg.level` (single-bin DFT at each speaker's frequency).
The benchmarks time tone bursts with it (:class:`ToneTrack` bursts, :class:`OnsetDetector`).
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

from .ice_consent import keep_consent
from .webrtc import no_ice_servers

RATE, SAMPLES = 48000, 960


class ToneTrack(MediaStreamTrack):
    """A sine at ``freq`` Hz, paced to real time (aiortc does not pace audio).

    With ``burst_frames`` it plays bursts instead: that many 20 ms frames of tone at the start of every
    ``period_frames``, silence between, and notes in ``onsets`` when each burst's first frame is handed
    to aiortc (``time.monotonic()``, one clock for every process on the machine)."""

    kind = "audio"

    def __init__(self, freq: float, amplitude: float = 0.25, *, burst_frames: int | None = None,
                 period_frames: int = 50) -> None:
        super().__init__()
        self.freq, self.amplitude = freq, amplitude
        self.burst_frames, self.period_frames = burst_frames, period_frames
        self.onsets: list[float] = []
        self._silence = np.zeros(SAMPLES, np.int16)
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
        if self.burst_frames is None:
            pcm = tone(self.freq, RATE, SAMPLES, self.amplitude, start=self._n * SAMPLES)
        else:
            k = self._n % self.period_frames
            pcm = tone(self.freq, RATE, SAMPLES, self.amplitude, start=k * SAMPLES) if k < self.burst_frames \
                else self._silence
            if k == 0:
                self.onsets.append(time.monotonic())
        frame = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate, frame.pts, frame.time_base = RATE, self._n * SAMPLES, fractions.Fraction(1, RATE)
        self._n += 1
        return frame


class OnsetDetector:
    """Burst onsets in received audio: the first sample above ``threshold`` once the audio has stayed
    below a third of it for ``quiet_frames`` frames; each noted as (time, pts of its frame)."""

    def __init__(self, threshold: float, quiet_frames: int = 10) -> None:
        self.threshold, self.quiet_frames = threshold, quiet_frames
        self.onsets: list[tuple[float, int | None]] = []
        self._quiet, self._in_burst = 0, False

    def feed(self, pcm: np.ndarray, got: float, pts: int | None) -> None:
        """``pcm`` (mono, at 48 kHz) was handed over by aiortc at ``got``."""
        x = np.abs(pcm.astype(np.int32))
        if not self._in_burst:
            loud = np.flatnonzero(x > self.threshold)
            if loud.size:
                self._in_burst, self._quiet = True, 0
                self.onsets.append((got + int(loud[0]) / RATE, pts))
        elif x.max() < self.threshold / 3:
            self._quiet += 1
            self._in_burst = self._quiet < self.quiet_frames
        else:
            self._quiet = 0


class ClientLeg:
    """One browser-like endpoint: offer with a tone (``track``: e.g. bursts), then listen; with
    ``onset_threshold`` the onsets of what it hears are noted too (``detector``)."""

    def __init__(self, freq: float, keep_frames: int = 25, amplitude: float = 0.25, *,
                 track: ToneTrack | None = None, onset_threshold: float | None = None) -> None:
        """``amplitude`` 0 sends silence (a party that says nothing)."""
        self.pc = RTCPeerConnection(no_ice_servers())
        self.track = track or ToneTrack(freq, amplitude)
        self.pc.addTrack(self.track)
        keep_consent(self.pc)  # like a browser: consent lasts until 30 s without an answer
        self.detector = OnsetDetector(onset_threshold) if onset_threshold is not None else None
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
                got = time.monotonic()
                for out in resampler.resample(frame):
                    pcm = out.to_ndarray().reshape(-1).copy()
                    self.heard.append(pcm)
                    self.frames += 1
                    if self.detector is not None:
                        self.detector.feed(pcm, got, frame.pts)

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
