"""A plain per-call mixer: the reference the batched engine is tested against, and the
benchmark's per-call baseline (what a naive mixer does: one Python iteration per call)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .limiter import LimiterKind, finish
from .routing import LegRouting, route


def mix_call(routing: Sequence[LegRouting], frames: Sequence[np.ndarray | None], limiter: LimiterKind = "soft",
             n_samples: int | None = None) -> np.ndarray:
    """Mix one call: ``frames[i]`` is leg i's input (None = missing = silence); returns (legs, samples) int16."""
    gains = route(routing)
    n = n_samples or max((f.shape[0] for f in frames if f is not None), default=0)
    x = np.zeros((len(frames), n), dtype=np.float64)
    for i, f in enumerate(frames):
        if f is not None:
            x[i] = f
    acc = (gains.astype(np.float64) @ x).astype(np.float32)
    out = np.empty(acc.shape, dtype=np.int16)
    finish(acc, out, limiter)
    return out


class PerCallMixer:
    """Holds calls as Python lists and mixes them one call at a time."""

    def __init__(self, limiter: LimiterKind = "soft") -> None:
        self.limiter: LimiterKind = limiter
        self.calls: dict[object, tuple[list[LegRouting], np.ndarray]] = {}

    def set_call(self, call: object, routing: Sequence[LegRouting]) -> None:
        self.calls[call] = (list(routing), route(routing))

    def tick(self, inputs: dict[object, np.ndarray]) -> dict[object, np.ndarray]:
        """``inputs[call]`` is (legs, samples) int16; returns the outputs in the same shape."""
        out = {}
        for call, (_routing, gains) in self.calls.items():
            x = inputs[call]
            acc = gains @ x.astype(np.float32)
            y = np.empty(x.shape, dtype=np.int16)
            finish(acc, y, self.limiter)
            out[call] = y
        return out
