"""Voice-like synthetic speech for the live demo: harmonic voices with syllables and pauses.

Each voice is a loop of ``seconds`` of audio, precomputed once: a glottal-like harmonic series on a
slowly wandering pitch, shaped by two formants that move per syllable, amplitude-modulated at a
syllable rate, in talk spurts separated by pauses. A leg is a (voice, offset) pair; the frames of many
legs for one tick come from one fancy-indexing gather, so pushing N demo calls costs no Python loop.
"""

from __future__ import annotations

import numpy as np
from bargein.mixer.frames import samples_per_frame
from bargein.mixer.tones import FULL_SCALE

# fundamentals (Hz) of the bank's voices: lower ones read as "agent-like", higher as "customer-like"
PITCHES = (105.0, 125.0, 150.0, 185.0, 215.0, 240.0)


def _voice(rate: int, seconds: float, f0: float, rng: np.random.Generator, level: float) -> np.ndarray:
    n = int(rate * seconds)
    t = np.arange(n) / rate
    # pitch: slow wander + intonation per syllable
    wander = 1 + 0.06 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6.3)) + 0.03 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0 * wander) / rate
    syll_rate = rng.uniform(3.5, 5.0)
    syll_phase = 2 * np.pi * syll_rate * t
    # formants move from syllable to syllable
    k = np.floor(syll_phase / (2 * np.pi)).astype(int)
    f1_choices = rng.uniform(300, 800, size=k.max() + 2)
    f2_choices = rng.uniform(900, 2300, size=k.max() + 2)
    f1, f2 = f1_choices[k], f2_choices[k]
    sig = np.zeros(n)
    for h in range(1, 30):
        fh = h * f0 * wander
        if fh.min() > rate / 2 - 200:
            break
        env = 1 / h**0.7 * (np.exp(-(((fh - f1) / 160) ** 2)) + 0.6 * np.exp(-(((fh - f2) / 220) ** 2)) + 0.05)
        sig += env * np.sin(h * phase)
    syllables = np.clip(np.sin(syll_phase), 0, None) ** 0.6
    # talk spurts (1-3 s) and pauses (0.4-1.8 s)
    talk = np.zeros(n)
    pos, speaking = int(rng.uniform(0, 1) * rate), True
    while pos < n:
        dur = int(rate * (rng.uniform(1.0, 3.0) if speaking else rng.uniform(0.4, 1.8)))
        if speaking:
            ramp = np.minimum(1, np.minimum(np.arange(dur), np.arange(dur)[::-1]) / (0.03 * rate))
            talk[pos : pos + dur] = ramp[: n - pos]
        pos += dur
        speaking = not speaking
    sig *= syllables * talk
    peak = np.abs(sig).max() or 1.0
    return np.round(sig / peak * level * FULL_SCALE).astype(np.int16)


class VoiceBank:
    """``len(PITCHES)`` voice loops of ``seconds`` each, as (voice, frame, samples) int16."""

    def __init__(self, rate: int, seconds: float = 8.0, level: float = 0.3, seed: int = 5) -> None:
        rng = np.random.default_rng(seed)
        self.n = samples_per_frame(rate)
        self.frames_per_loop = int(seconds * 50)
        loops = [_voice(rate, self.frames_per_loop * self.n / rate, f0, rng, level) for f0 in PITCHES]
        self.bank = np.stack(loops).reshape(len(PITCHES), self.frames_per_loop, self.n)

    @property
    def voices(self) -> int:
        return self.bank.shape[0]

    def frames(self, voices: np.ndarray, offsets: np.ndarray, tick: int) -> np.ndarray:
        """One frame per leg: ``bank[voice, (offset + tick) % loop]`` -> (K, samples)."""
        return self.bank[voices, (offsets + tick) % self.frames_per_loop]
