"""Synthetic voices and how they are measured.

Every leg speaks one pure tone from a pool of ``POOL`` frequencies. Each pool frequency is an exact
multiple of 50 Hz, so a 20 ms frame holds a whole number of cycles: the tone's frame is the same on
every tick (phase-continuous for free) and a single-bin DFT over one frame separates the tones
exactly. Within a call every leg has its own frequency; each call draws its own random subset of
the pool, so audio leaking from another call shows up at a frequency no leg of the listener's call
owns.

Frames for all legs are built with one gather from a precomputed table (row ``POOL`` is silence).
Measurement takes one real FFT of every listener's output and reads the pool's bins. All tones lie below
2.7 kHz, so the FFT can use every ``rate/8000``-th sample without aliasing: the cost is the
same at 48 kHz as at 8 kHz.
"""

from __future__ import annotations

import numpy as np
from bargein.mixer.frames import samples_per_frame
from bargein.mixer.tones import FULL_SCALE

BIN_HZ = 50  # 1 / 20 ms
POOL = 24
POOL_BINS = np.arange(POOL, dtype=np.int64) * 2 + 7  # 350, 450, ... 2650 Hz: away from DC, below 4 kHz
POOL_HZ = POOL_BINS * BIN_HZ
SILENCE = POOL  # row of the tone table that is all zeros


def tone_table(rate: int, amplitude: float) -> np.ndarray:
    """``(POOL + 1, samples_per_frame)`` int16: one frame per pool tone, then a silent frame."""
    n = samples_per_frame(rate)
    t = np.arange(n)
    table = np.zeros((POOL + 1, n), dtype=np.int16)
    table[:POOL] = np.round(amplitude * FULL_SCALE * np.sin(2 * np.pi * POOL_BINS[:, None] * t / n))
    return table


class ToneMeter:
    """Level of every pool tone in many frames at once: ``levels(frames) -> (K, POOL)`` (linear, int16 units).

    One real FFT per frame over every ``rate/8000``-th sample: each pool tone sits exactly on a bin. It is
    cheaper than projecting on 48 sin/cos columns with a matmul, and it wakes no BLAS threads (on a busy
    two-core machine their spinning cost more than the product itself).
    """

    def __init__(self, rate: int) -> None:
        n = samples_per_frame(rate)
        self.step = max(1, n // 160)  # 160 samples per frame carry every pool tone exactly
        self.m = n // self.step
        self.scale = 2.0 / self.m

    def levels(self, frames: np.ndarray) -> np.ndarray:
        x = frames[:, :: self.step].astype(np.float32)
        spectrum = np.fft.rfft(x, axis=1)  # complex64: bin k is k x 50 Hz
        return self.scale * np.abs(spectrum[:, POOL_BINS])
