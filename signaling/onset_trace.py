"""An opt-in latency probe: when does a tone onset pass each stage of the server's media path.

Set ``BARGEIN_TRACE_ONSETS=/path/file.jsonl`` and the WebRTC gateway notes, per leg, every frame in
which loud audio starts after a quiet spell: ``arrival`` (decoded as its packet arrived), ``played``
(pulled from the adaptive buffer into the mixer), ``mixed`` (in a listener's mix after the tick) and
``sent`` (handed to aiortc's sender). One JSON line each, ``{"stage", "leg", "t"}``, ``t`` from
``time.monotonic()`` (one clock for every process of the machine). ``benchmarks.webrtc_latency
--budget`` reads it. Off by default; costs one ``abs().max()`` per frame and stage when on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO

import numpy as np

QUIET_FRAMES = 10  # this many quiet frames end a burst


class OnsetTrace:
    def __init__(self, path: str | Path, threshold: float = 2700.0) -> None:
        self.threshold = threshold
        self._file: IO[str] = open(path, "a", buffering=1)  # line-buffered: survives a SIGTERM
        self._quiet: dict[tuple[str, int], int] = {}

    @classmethod
    def from_env(cls) -> OnsetTrace | None:
        path = os.environ.get("BARGEIN_TRACE_ONSETS")
        return cls(path) if path else None

    def see(self, stage: str, leg: int, pcm: np.ndarray, t: float) -> bool:
        """Note ``pcm`` at ``stage``; True (and a line written) when an onset starts in it."""
        peak = int(np.abs(pcm.astype(np.int32)).max()) if len(pcm) else 0
        key = (stage, leg)
        quiet = self._quiet.get(key, QUIET_FRAMES)
        if peak > self.threshold:
            self._quiet[key] = 0
            if quiet >= QUIET_FRAMES:
                self.note(stage, leg, t)
                return True
        elif peak < self.threshold / 3:
            self._quiet[key] = quiet + 1
        return False

    def note(self, stage: str, leg: int, t: float) -> None:
        self._file.write(json.dumps({"stage": stage, "leg": leg, "t": t}) + "\n")

    def close(self) -> None:
        self._file.close()
