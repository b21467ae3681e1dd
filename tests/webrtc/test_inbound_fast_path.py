"""Inbound frames that already match the mixer skip the resampler; the result equals what the
resampler gives for a mono source decoded to stereo (as aiortc's Opus decoder delivers it)."""

from __future__ import annotations

import av
import numpy as np
from bargein.mixer.tones import tone
from bargein.signaling.webrtc import _as_mixer_frame
from hypothesis import given
from hypothesis import strategies as st


def frame(pcm: np.ndarray, layout: str, rate: int = 48000) -> av.AudioFrame:
    f = av.AudioFrame(format="s16", layout=layout, samples=pcm.shape[-1] // (2 if layout == "stereo" else 1))
    f.planes[0].update(np.ascontiguousarray(pcm).tobytes())
    f.sample_rate = rate
    return f


@given(freq=st.floats(100, 4000), amplitude=st.floats(0.01, 0.99))
def test_stereo_copy_of_a_mono_source_comes_back_whole(freq: float, amplitude: float) -> None:
    mono = tone(freq, 48000, 960, amplitude)
    got = _as_mixer_frame(frame(np.repeat(mono, 2), "stereo"), 48000, 960)
    assert got is not None and got.dtype == np.int16
    assert np.abs(got.astype(int) - mono).max() <= 1  # halves of odd samples lose at most one step
    resampled = np.concatenate([o.to_ndarray().reshape(-1) for o in
                                av.AudioResampler(format="s16", layout="mono", rate=48000).resample(
                                    frame(np.repeat(mono, 2), "stereo"))])
    assert np.abs(got.astype(int) - resampled).max() <= 1


def test_extreme_channels_do_not_overflow_and_mono_passes_through() -> None:
    loud = np.array([32767, 32767, -32768, -32768] * 480, dtype=np.int16)
    got = _as_mixer_frame(frame(loud, "stereo"), 48000, 960)
    assert got is not None and got.max() == 32766 and got.min() == -32768
    mono = tone(700, 48000, 960)
    assert np.array_equal(_as_mixer_frame(frame(mono, "mono"), 48000, 960), mono)


def test_other_rates_or_sizes_take_the_resampler() -> None:
    assert _as_mixer_frame(frame(tone(700, 16000, 320), "mono", 16000), 48000, 960) is None
    assert _as_mixer_frame(frame(tone(700, 48000, 480), "mono"), 48000, 960) is None
    assert _as_mixer_frame(frame(tone(700, 48000, 960), "mono"), 16000, 320) is None
