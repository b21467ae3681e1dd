"""The receive shim: real Opus packets (libopus via PyAV) in aiortc's RtpPacket, decoded into numbered
frames at the mixer rate; and the install check against the pinned aiortc's receiver layout."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket
from bargein.mixer.tones import level_dbfs, tone
from bargein.signaling.jitter import AdaptiveJitterBuffer
from bargein.signaling.opus_inbound import OpusInbound, install
from bargein.signaling.webrtc import no_ice_servers
from bargein.signaling.webrtc_client import ClientLeg


def opus_packets(freq: float, count: int, ms: int = 20) -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.format, enc.layout, enc.sample_rate, enc.bit_rate = "s16", "mono", 48000, 48000
    enc.time_base = fractions.Fraction(1, 48000)
    enc.options = {"frame_duration": str(ms)}
    n = 48 * ms
    out = []
    for i in range(count):
        frame = av.AudioFrame.from_ndarray(tone(freq, 48000, n, 0.25, start=i * n).reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, i * n, enc.time_base
        out += [bytes(p) for p in enc.encode(frame)]
    return out


def rtp(payload: bytes, seq: int, ts: int) -> RtpPacket:
    p = RtpPacket(payload_type=111, sequence_number=seq & 0xFFFF, timestamp=ts & 0xFFFFFFFF)
    p.payload = payload
    p._data = payload  # what aiortc's depayload leaves for Opus
    return p


class Recorder(AdaptiveJitterBuffer):
    def __init__(self, samples: int) -> None:
        super().__init__(samples)
        self.got: list[tuple[int, np.ndarray]] = []

    def put(self, number: int, pcm: np.ndarray, arrival: float) -> None:
        self.got.append((number, pcm))
        super().put(number, pcm, arrival)


@pytest.mark.parametrize("rate", [48000, 16000])
def test_packets_become_numbered_frames_across_timestamp_wrap_and_loss(rate: int) -> None:
    samples = rate // 50
    buf = Recorder(samples)
    inbound = OpusInbound(buf, rate, clock=lambda: 0.0)
    start_ts = 0xFFFFFFFF - 960 * 3  # wraps after a few packets
    lost = {7, 8, 20}
    for i, payload in enumerate(opus_packets(440.0, 40)):
        if i in lost:
            continue
        assert inbound.add(rtp(payload, 1000 + i, start_ts + i * 960)) == (False, None)
    numbers = [n for n, _ in buf.got]
    assert inbound.decode_errors == 0
    assert all(pcm.shape == (samples,) and pcm.dtype == np.int16 for _, pcm in buf.got)
    assert set(numbers) <= set(range(40)) - lost  # the numbers follow the RTP clock through the wrap
    assert len(numbers) >= 40 - len(lost) - 3  # (a resampler may hold back a little after each gap)
    assert numbers == sorted(numbers)
    tail = np.concatenate([pcm for n, pcm in buf.got if n >= 25])
    assert level_dbfs(tail, 440.0, rate) > -20  # the tone survives decode (and resampling)


def test_ten_millisecond_packets_make_twenty_millisecond_frames() -> None:
    buf = Recorder(960)
    inbound = OpusInbound(buf, 48000, clock=lambda: 0.0)
    for i, payload in enumerate(opus_packets(440.0, 20, ms=10)):
        inbound.add(rtp(payload, i, 5000 + i * 480))
    assert [n for n, _ in buf.got] == list(range(10))


def test_garbage_payload_is_counted_not_raised() -> None:
    buf = Recorder(960)
    inbound = OpusInbound(buf, 48000, clock=lambda: 0.0)
    inbound.add(rtp(b"\xff\xff\xff\xff\x00\x01", 1, 0))
    assert inbound.packets == 1 and not buf.got


async def test_install_replaces_the_receivers_jitter_buffer_of_the_pinned_aiortc() -> None:
    """If aiortc moves its jitter buffer, this fails (and the gateway would fall back to its track)."""
    client = ClientLeg(500.0)
    server = RTCPeerConnection(no_ice_servers())
    try:
        await server.setRemoteDescription(RTCSessionDescription(sdp=await client.offer(), type="offer"))
        receiver = server.getTransceivers()[0].receiver
        assert isinstance(receiver._RTCRtpReceiver__jitter_buffer, JitterBuffer)  # the slot of aiortc 1.16
        inbound = OpusInbound(AdaptiveJitterBuffer(960), 48000)
        assert install(receiver, inbound)
        assert receiver._RTCRtpReceiver__jitter_buffer is inbound
        assert not install(object(), inbound)  # anything else: refused, not patched
    finally:
        await client.close()
        await server.close()
