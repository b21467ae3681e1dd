"""Who is talking on a supervised call, measured on the audio the mixer takes (the call card's indicators).

A supervisor's browser receives one mixed track, so it cannot tell the customer's voice from the agent's:
levels are measured on the server, per leg, on the inbound frames pushed into the mixer. Only calls the
core asked for are measured (calls with a supervisor, :class:`~.actions.MeterCall`), so the cost is one
RMS per frame of those few legs. Every ``window`` ticks (10 x 20 ms: 5 reports a second)
:meth:`LevelMeter.tick` returns each metered leg's loudest frame of the window, then starts a new window.

Sans-IO: whoever pushes frames into a mixer (the WebRTC gateway, the demo's voices) also hands them to
:meth:`LevelMeter.observe`; the owner of the mixer's clock calls :meth:`LevelMeter.tick` every tick.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np

TALKING_RMS = 0.01  # -40 dBFS: a window whose loudest 20 ms frame is above this has speech in it
QUIET_RMS = 1e-4  # below this every leg is silent: a silent call is reported once, not five times a second
WINDOW_TICKS = 10

CallKey = Hashable


class LevelMeter:
    """RMS levels (0..1 of full scale) of the legs of metered calls; ``legs_of(call)`` lists a call's
    mixer legs (raising ``KeyError`` once the call has left the mixer)."""

    def __init__(self, legs_of: Callable[[CallKey], list[int]], window: int = WINDOW_TICKS) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1 tick, got {window}")
        self.legs_of, self.window = legs_of, window
        self._calls: dict[CallKey, list[int]] = {}  # metered call -> its legs when the window started
        self._quiet: dict[CallKey, bool] = {}  # the last report of the call was all silence
        self._mask = np.zeros(64, dtype=bool)  # mixer leg id -> measured
        self._peak = np.zeros(64, dtype=np.float32)  # loudest frame of the window per leg
        self._ticks = 0

    @property
    def calls(self) -> list[CallKey]:
        return list(self._calls)

    def meter(self, call: CallKey, on: bool) -> None:
        """Start (or stop) measuring ``call``'s legs; idempotent."""
        if on:
            self._quiet.setdefault(call, True)
            self._calls[call] = self._legs(call) or []
        else:
            self._calls.pop(call, None)
            self._quiet.pop(call, None)
        self._remask()

    def observe(self, legs: Sequence[int] | np.ndarray, frames: np.ndarray) -> None:
        """Frames about to be mixed, one row per leg (int16); only metered legs cost anything."""
        if not self._calls:
            return
        ids = np.asarray(legs, dtype=np.int64)
        known = (ids >= 0) & (ids < self._mask.size)
        pick = np.flatnonzero(known & self._mask[np.where(known, ids, 0)])
        if not pick.size:
            return
        f = frames[pick].astype(np.float32)
        rms = np.sqrt(np.mean(f * f, axis=1)) / 32768.0
        np.maximum.at(self._peak, ids[pick], rms)

    def tick(self, index: int | None = None) -> dict[CallKey, dict[int, float]]:
        """Call every tick. At the end of a window: ``{call: {leg: level}}`` for the metered calls that have
        something to report (a call silent now and at its last report is left out), else ``{}``."""
        if not self._calls:
            self._ticks = 0
            return {}
        self._ticks += 1
        if self._ticks < self.window:
            return {}
        self._ticks = 0
        out: dict[CallKey, dict[int, float]] = {}
        for call, legs in list(self._calls.items()):
            levels = {leg: round(float(self._peak[leg]), 4) for leg in legs}
            quiet = max(levels.values(), default=0.0) < QUIET_RMS
            if not (quiet and self._quiet[call]):
                out[call] = levels
            self._quiet[call] = quiet
            now = self._legs(call)
            if now is None:  # the call left the mixer
                del self._calls[call], self._quiet[call]
            else:
                self._calls[call] = now
        self._peak[:] = 0.0
        self._remask()
        return out

    def _legs(self, call: CallKey) -> list[int] | None:
        try:
            return list(self.legs_of(call))
        except KeyError:
            return None

    def _remask(self) -> None:
        legs = [leg for ls in self._calls.values() for leg in ls]
        top = max(legs, default=-1)
        if top >= self._mask.size:
            size = max(2 * self._mask.size, top + 1)
            self._mask = np.zeros(size, dtype=bool)
            self._peak = np.concatenate([self._peak, np.zeros(size - self._peak.size, np.float32)])
        self._mask[:] = False
        if legs:
            self._mask[legs] = True
