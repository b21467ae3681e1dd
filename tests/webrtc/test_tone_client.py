"""The tone client's bursts and onset detector, which the latency and capacity benchmarks time with."""

from __future__ import annotations

import numpy as np
from bargein.mixer.tones import tone
from bargein.signaling.webrtc_client import RATE, SAMPLES, OnsetDetector, ToneTrack

THRESHOLD = 0.25 * 32767 / 3


def test_onset_is_the_first_loud_sample_and_a_burst_counts_once() -> None:
    det = OnsetDetector(THRESHOLD)
    quiet = np.zeros(SAMPLES, np.int16)
    burst = tone(1000.0, RATE, SAMPLES * 5, 0.25)
    for k in range(5):
        det.feed(quiet, k * 0.02, k * SAMPLES)
    first = np.concatenate([quiet[:480], burst[:480]])  # the burst starts half-way through this frame
    det.feed(first, 0.1, 5 * SAMPLES)
    for k in range(1, 5):  # the rest of the burst: the same onset
        det.feed(burst[k * SAMPLES:(k + 1) * SAMPLES], 0.1 + k * 0.02, (5 + k) * SAMPLES)
    assert len(det.onsets) == 1
    t, pts = det.onsets[0]
    assert pts == 5 * SAMPLES and 0 <= t - (0.1 + 480 / RATE) < 4 / RATE  # a sine crosses a third of its peak 3 samples in
    for k in range(9):  # not quiet for long enough: a new loud frame is the same burst
        det.feed(quiet, 0.2 + k * 0.02, None)
    det.feed(burst[:SAMPLES], 0.4, None)
    assert len(det.onsets) == 1
    for k in range(10):
        det.feed(quiet, 0.5 + k * 0.02, None)
    det.feed(burst[:SAMPLES], 0.8, None)
    assert len(det.onsets) == 2 and 0.8 <= det.onsets[1][0] < 0.8 + 4 / RATE


async def test_burst_track_plays_bursts_and_notes_when_each_starts() -> None:
    track = ToneTrack(1000.0, 0.25, burst_frames=3, period_frames=5)
    frames = [await track.recv() for _ in range(10)]
    loud = [int(np.abs(f.to_ndarray()).max()) > THRESHOLD for f in frames]
    assert loud == [True, True, True, False, False] * 2
    assert len(track.onsets) == 2 and track.onsets[1] - track.onsets[0] > 0.09  # paced: 5 frames (100 ms) apart
    assert [f.pts for f in frames] == [k * SAMPLES for k in range(10)]
    track.stop()
