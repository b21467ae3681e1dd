"""Test tones and their measurement: a distinct sine per leg, and the level of one frequency in a signal.

Tones sit exactly on an FFT bin of the analysis window, so a tone that is absent measures at the
quantisation floor (below -90 dBFS) and one that is present at its own level.
"""

from __future__ import annotations

import numpy as np

FULL_SCALE = 32767.0


def tone(freq_hz: float, rate: int, n_samples: int, amplitude: float = 0.25, start: int = 0) -> np.ndarray:
    """int16 sine at ``amplitude`` x full scale, starting at sample index ``start`` (phase-continuous)."""
    t = (np.arange(n_samples) + start) / rate
    return np.round(amplitude * FULL_SCALE * np.sin(2 * np.pi * freq_hz * t)).astype(np.int16)


def level_dbfs(signal: np.ndarray, freq_hz: float, rate: int) -> float:
    """Level of ``freq_hz`` in ``signal`` in dBFS (a full-scale sine reads 0 dB)."""
    x = np.asarray(signal, dtype=np.float64)
    n = x.shape[-1]
    k = np.exp(-2j * np.pi * freq_hz * np.arange(n) / rate)
    amp = 2 * np.abs(x @ k) / n
    return float(20 * np.log10(np.maximum(amp, 1e-9) / FULL_SCALE))


def spectrum_dbfs(signal: np.ndarray) -> np.ndarray:
    """Per-bin level in dBFS of the real FFT of ``signal`` (last axis)."""
    x = np.asarray(signal, dtype=np.float64)
    n = x.shape[-1]
    amp = 2 * np.abs(np.fft.rfft(x, axis=-1)) / n
    return 20 * np.log10(np.maximum(amp, 1e-9) / FULL_SCALE)
