"""Client side of a simulated WebRTC leg (aiortc): a paced tone source and a probe that measures what arrives.

The source sends the leg's pool tone (or silence) at 48 kHz, one 20 ms frame per ``recv()``, paced on a
monotonic schedule (aiortc does not pace audio itself). The probe drains the remote track continuously
(aiortc's receive queue is unbounded: a slow consumer would build delay) and keeps only the last few
frames, which :meth:`LevelProbe.levels` measures with the same single-bin DFT as the in-process checker.
Every pool tone is a multiple of 50 Hz, so any 960-sample window holds whole cycles: no alignment needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections import deque
from collections.abc import Callable

import numpy as np
import structlog
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame

from .voices import SILENCE, ToneMeter, tone_table

log = structlog.get_logger("bargein.simulator.webrtc")

RATE = 48000
SAMPLES = 960
TIME_BASE = fractions.Fraction(1, RATE)


class ToneSource(MediaStreamTrack):
    """Outgoing audio: ``row()`` says which tone-table row to send now (``SILENCE`` for a pause)."""

    kind = "audio"

    def __init__(self, row: Callable[[], int], amplitude: float) -> None:
        super().__init__()
        self._row = row
        self._table = tone_table(RATE, amplitude)
        self._start: float | None = None
        self._n = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._n * 0.02
        if due > now:
            await asyncio.sleep(due - now)
        elif now - due > 0.2:  # we were stalled: resynchronise instead of bursting
            self._start, self._n = now, 0
        row = self._row()
        pcm = self._table[row if 0 <= row < len(self._table) else SILENCE]
        frame = AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate = RATE
        frame.pts = self._n * SAMPLES
        frame.time_base = TIME_BASE
        self._n += 1
        return frame


class LevelProbe:
    """Drains a received audio track; keeps the last ``keep`` 20 ms frames (mono, 48 kHz) for measuring."""

    def __init__(self, keep: int = 4) -> None:
        self.frames: deque[np.ndarray] = deque(maxlen=keep)
        self.received = 0
        self._meter = ToneMeter(RATE)
        self._buf = np.zeros(0, np.int16)
        self._task: asyncio.Task[None] | None = None

    def attach(self, track: MediaStreamTrack) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain(track))

    async def _drain(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                pcm = frame.to_ndarray()
                channels = len(frame.layout.channels)
                if frame.format.is_planar:
                    mono = pcm.astype(np.int32).mean(axis=0)
                else:
                    mono = pcm.reshape(-1, channels).astype(np.int32).mean(axis=1)
                buf = np.concatenate([self._buf, mono.astype(np.int16)])
                while buf.size >= SAMPLES:  # re-chunk to 960 samples whatever the decoder hands out
                    self.frames.append(buf[:SAMPLES])
                    buf = buf[SAMPLES:]
                    self.received += 1
                self._buf = buf

    def levels(self, last: int = 3) -> np.ndarray | None:
        """Per-pool-tone level (int16 units) of each of the last ``last`` frames, or None if too few arrived."""
        if len(self.frames) < last:
            return None
        return self._meter.levels(np.stack(list(self.frames)[-last:]))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
