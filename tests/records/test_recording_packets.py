"""A recording file's Opus packets: several 20 ms frames each, whatever batches the writer is handed, with the
audio whole and in order (each channel's tone, at its phase, from the first frame to the last)."""

from pathlib import Path

import av
import numpy as np
import pytest
from bargein.signaling.recorder import PACKET_FRAMES, OggOpusFile

RATE, N = 48000, 960
LEFT, RIGHT = 440.0, 620.0


def stereo_tone(frames: int) -> np.ndarray:
    """``(frames, 2, N)`` int16: LEFT on the left channel, RIGHT on the right, one continuous phase."""
    t = np.arange(frames * N) / RATE
    pcm = np.stack([np.sin(2 * np.pi * LEFT * t), np.sin(2 * np.pi * RIGHT * t)]) * 8000
    return pcm.astype(np.int16).reshape(2, frames, N).transpose(1, 0, 2).copy()


def packets_and_audio(path: Path) -> tuple[list[int], np.ndarray]:
    with av.open(str(path)) as c:
        durations = [p.duration for p in c.demux(audio=0) if p.size]
    with av.open(str(path)) as c:
        pcm = np.concatenate([f.to_ndarray().reshape(2, -1) for f in c.decode(audio=0)], axis=1)
    return durations, pcm.astype(np.float64) * 32768  # decoded as float in [-1, 1)


@pytest.mark.parametrize("batches", [[23], [1, 7, 3, 12], [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3]])
def test_frames_handed_over_in_any_batches_make_whole_packets(tmp_path: Path, batches: list[int]) -> None:
    frames = stereo_tone(sum(batches))
    sink = OggOpusFile(tmp_path / "r.ogg", RATE)
    at = 0
    for k in batches:
        sink.write(frames[at:at + k])
        at += k
    sink.close()
    durations, pcm = packets_and_audio(tmp_path / "r.ogg")
    whole, rest = divmod(len(frames), PACKET_FRAMES)
    assert durations == [PACKET_FRAMES * N] * whole + ([rest * N] if rest else [])
    # every sample is there (the decoder drops the encoder's pre-skip at the start), and it is the same tone:
    # fitted to the tones sent, shifted by the codec's delay, what is left is the codec's noise, not a seam
    assert len(frames) * N - N < pcm.shape[1] <= len(frames) * N
    sent = frames.transpose(1, 0, 2).reshape(2, -1).astype(np.float64)
    body = slice(N, pcm.shape[1] - N)
    for ch in (0, 1):
        best = min(range(-400, 400), key=lambda d: np.sum((pcm[ch, body] - np.roll(sent[ch], -d)[body]) ** 2))
        residual = pcm[ch, body] - np.roll(sent[ch], -best)[body]
        assert np.sqrt(np.mean(residual ** 2)) < 0.1 * np.sqrt(np.mean(sent[ch] ** 2)), (ch, best)


def test_a_recording_with_no_frame_is_still_a_file(tmp_path: Path) -> None:
    OggOpusFile(tmp_path / "r.ogg", RATE).close()
    durations, pcm = packets_and_audio(tmp_path / "r.ogg")
    assert durations == [N] and not np.any(np.abs(pcm) > 1)


def test_packet_size_and_frame_shape_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1 to 6 frames"):
        OggOpusFile(tmp_path / "r.ogg", RATE, packet_frames=7)
    sink = OggOpusFile(tmp_path / "r.ogg", RATE)
    with pytest.raises(ValueError, match=r"shape \(k, 2, samples\)"):
        sink.write(stereo_tone(1)[0])  # one frame without its batch axis
    sink.close()
