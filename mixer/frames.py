"""Frame format: mono int16 PCM, 20 ms, at 8, 16 or 48 kHz."""

from __future__ import annotations

import numpy as np

FRAME_MS = 20
SUPPORTED_RATES = (8000, 16000, 48000)
SAMPLE_DTYPE = np.dtype(np.int16)


class FrameError(ValueError):
    """A frame does not have the mixer's format; the message says what was expected."""


def samples_per_frame(rate: int) -> int:
    check_rate(rate)
    return rate * FRAME_MS // 1000


def check_rate(rate: int) -> None:
    if rate not in SUPPORTED_RATES:
        raise FrameError(f"unsupported mixer rate {rate} Hz: expected one of {', '.join(map(str, SUPPORTED_RATES))}")


def check_frame(frame: object, rate: int, *, sample_rate: int | None = None, n_samples: int | None = None
                ) -> np.ndarray:
    """Return ``frame`` if it is one mono int16 frame at ``rate`` (20 ms unless ``n_samples`` says otherwise);
    raise FrameError otherwise."""
    n = n_samples or samples_per_frame(rate)
    if sample_rate is not None and sample_rate != rate:
        raise FrameError(f"frame sample rate is {sample_rate} Hz: expected {rate} Hz (resample first)")
    if not isinstance(frame, np.ndarray):
        raise FrameError(f"frame must be a numpy array of int16, got {type(frame).__name__}")
    if frame.dtype != SAMPLE_DTYPE:
        raise FrameError(f"frame dtype is {frame.dtype}: expected int16")
    if frame.ndim != 1:
        raise FrameError(f"frame shape is {frame.shape}: expected mono ({n},)")
    if frame.shape[0] != n:
        raise FrameError(f"frame has {frame.shape[0]} samples: expected {n}"
                         + (f" (20 ms at {rate} Hz)" if n == samples_per_frame(rate) else ""))
    return frame
