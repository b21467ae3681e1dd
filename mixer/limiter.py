"""Clamp-once output stage: an optional soft clipper, then a hard clamp to int16.

The soft clipper is a per-sample tanh knee: identity up to ``KNEE`` (about -1.9 dBFS), then a smooth
curve that approaches full scale. It only runs on blocks whose peak passes the knee, so ordinary
speech costs one max() per block.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

INT16_MIN = -32768.0
INT16_MAX = 32767.0
KNEE = 26000.0
_HEADROOM = INT16_MAX - KNEE

LimiterKind = Literal["hard", "soft"]


def soft_clip(acc: np.ndarray) -> None:
    """Soft-knee clip ``acc`` (float32, any shape) in place; identity where |x| <= KNEE."""
    over = np.abs(acc) > KNEE
    if not over.any():
        return
    x = acc[over]
    mag = KNEE + _HEADROOM * np.tanh((np.abs(x) - KNEE) / _HEADROOM)
    acc[over] = np.copysign(mag, x)


def finish(acc: np.ndarray, out: np.ndarray, limiter: LimiterKind) -> None:
    """Round, limit and clamp ``acc`` (float32) once, writing int16 ``out``."""
    if limiter == "soft":
        peak = max(float(acc.max(initial=0.0)), -float(acc.min(initial=0.0)))
        if peak > KNEE:
            soft_clip(acc)
    np.rint(acc, out=acc)
    np.clip(acc, INT16_MIN, INT16_MAX, out=acc)
    np.copyto(out, acc, casting="unsafe")
