"""The voice encoder settings (signaling/opus_voice.py) reach both encoders and keep two voices apart."""

import av
import numpy as np
from bargein.mixer.tones import level_dbfs
from bargein.signaling.webrtc import _GroupEncoder

RATE = 48000


def _two_voices(frames: int) -> np.ndarray:
    t = np.arange(frames * 960) / RATE
    x = 0.2 * np.sin(2 * np.pi * 500 * t) + 0.1 * np.sin(2 * np.pi * 1300 * t)
    return (x * 32767).astype(np.int16).reshape(frames, 960)


def _wideband(packet: bytes) -> bool:
    """The packet's TOC byte (RFC 6716 3.1) says wideband: SILK-only configs 8-11 or CELT-only 20-23."""
    config = packet[0] >> 3
    return 8 <= config <= 11 or 20 <= config <= 23


def test_group_encoder_uses_voice_complexity_and_keeps_both_tones() -> None:
    enc = _GroupEncoder(RATE)
    assert enc.opus is not None  # libopus straight (PyAV's bundled copy), not PyAV's re-framing encoder
    dec = av.CodecContext.create("libopus", "r")
    dec.format, dec.layout, dec.sample_rate = "s16", "mono", RATE
    out, payloads = [], []
    for frame in _two_voices(100):
        for packet in enc.encode(frame):
            payloads.append(packet)
            out += [f.to_ndarray().reshape(-1) for f in dec.decode(av.Packet(packet))]
    heard = np.concatenate(out)[-RATE:]  # the last second, past the codec's start-up
    assert all(_wideband(p) for p in payloads[10:])
    assert abs(level_dbfs(heard, 500, RATE) - 20 * np.log10(0.2)) < 1.5
    assert abs(level_dbfs(heard, 1300, RATE) - 20 * np.log10(0.1)) < 1.5
    assert level_dbfs(heard, 900, RATE) < -40  # nothing between them


def _celt_only(packet: bytes) -> bool:
    return packet[0] >> 3 >= 16  # TOC configs 16-31 (RFC 6716 3.1)


def test_live_and_recording_encoders_are_low_delay_celt(tmp_path) -> None:
    """The server re-encodes every sound it passes on: its encoder's look-ahead is added to the call's
    latency. Restricted low-delay Opus looks ahead 2.5 ms (SILK's voice mode 6.5 ms) and codes CELT only."""
    from bargein.signaling import libopus
    from bargein.signaling.recorder import OggOpusFile

    enc = _GroupEncoder(RATE)
    assert enc.opus is not None and enc.opus.lookahead == RATE * 25 // 10000
    assert all(_celt_only(p) for frame in _two_voices(20) for p in enc.encode(frame))
    assert libopus.Encoder(RATE, 1).lookahead == RATE * 65 // 10000  # the default (voip) for comparison
    rec = OggOpusFile(tmp_path / "r.ogg", RATE)
    assert rec.opus is not None
    pre_skip = int.from_bytes(rec.stream.codec_context.extradata[10:12], "little")  # OpusHead (RFC 7845 5.1)
    assert pre_skip == rec.opus.lookahead == RATE * 25 // 10000  # the header trims what our encoder adds
    rec.close()


def test_recording_file_encodes_with_libopus_and_keeps_both_channels(tmp_path) -> None:
    from bargein.signaling.recorder import OggOpusFile

    f = OggOpusFile(tmp_path / "r.ogg", RATE)
    assert f.opus is not None  # libopus straight, PyAV's container (its header from the stream's encoder)
    for frame in _two_voices(50):
        f.write(np.stack([frame, frame // 2])[None])  # one stereo frame at a time
    f.close()
    with av.open(str(tmp_path / "r.ogg")) as c:
        pcm = np.concatenate([fr.to_ndarray() for fr in c.decode(audio=0)], axis=1)
    assert abs(pcm.shape[1] - 50 * 960) < 960  # every frame, the encoder's pre-skip trimmed by the header
    left, right = (pcm[ch, -RATE // 2:].astype(np.float64) for ch in (0, 1))
    if pcm.dtype.kind == "f":  # the decoder gives floats in [-1, 1]
        left, right = left * 32767, right * 32767
    assert abs(level_dbfs(left, 500, RATE) - 20 * np.log10(0.2)) < 1.5
    assert abs(level_dbfs(right, 500, RATE) - 20 * np.log10(0.1)) < 1.5  # the right channel is half as loud


def test_recording_closed_before_any_frame_is_a_file_that_decodes(tmp_path) -> None:
    """A call that ends before the mixer's first tick still leaves the file its contact record names."""
    from bargein.signaling.recorder import OggOpusFile

    OggOpusFile(tmp_path / "empty.ogg", RATE).close()
    with av.open(str(tmp_path / "empty.ogg")) as c:
        assert sum(fr.samples for fr in c.decode(audio=0)) > 0
