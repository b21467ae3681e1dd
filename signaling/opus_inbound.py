"""Server legs take their Opus RTP straight from aiortc's receiver, without its prefetching jitter buffer.

aiortc's audio ``JitterBuffer`` holds 4 packets before releasing one (~70-80 ms one way), stops at the
first missing packet until its 16-slot ring overflows, then decodes on a thread and hops each frame back
to the event loop. On the server the mixer tick is the consumer, and :mod:`.jitter` paces it far
closer to the arrival jitter. So, per receiver, :class:`OpusInbound` takes the jitter buffer's place:
aiortc calls ``add(packet)`` for every RTP packet after SRTP, RTX unwrapping and depayloading (its
RTCP statistics and receiver reports stay intact), or :mod:`.rtp_direct` calls ``add_payload`` straight
from the socket once DTLS is up; we decode at once (libopus directly, :mod:`.libopus`, to mono at the
mixer rate, so no down-mix or resampling) and hand
numbered 20 ms frames at the mixer rate to the leg's :class:`~.jitter.AdaptiveJitterBuffer`, returning
"no frame" so aiortc's decoder thread stays idle.

This uses one private slot of ``RTCRtpReceiver``; aiortc is pinned to the 1.16 series in
pyproject.toml and :func:`install` checks that the slot holds what it expects (tests cover it).
When it does not, :func:`install` returns False and the gateway falls back to reading aiortc's track.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np
import structlog
from aiortc.jitterbuffer import JitterBuffer

from . import libopus
from .jitter import AdaptiveJitterBuffer
from .jitter_fast import FastJitterBuffer

log = structlog.get_logger("bargein.webrtc")

RTP_RATE = 48000  # Opus RTP clock, whatever the codec's internal rate (RFC 7587)
_SLOT = "_RTCRtpReceiver__jitter_buffer"


class FrameCutter:
    """Cuts decoded PCM, placed on the sender's timeline, into numbered frames of ``samples`` at ``rate``
    (mono s16; PyAV's resampler converts when the rate or layout differ)."""

    def __init__(self, rate: int, samples: int) -> None:
        self.rate, self.samples = rate, samples
        self._resampler = None if rate == RTP_RATE else av.AudioResampler(format="s16", layout="mono", rate=rate)
        self._pending = np.zeros(0, np.int16)
        self._pos = 0  # position of _pending[0], in samples at ``rate`` since the first packet
        self._tol = samples // 8  # a resampler's few samples of delay do not break continuity

    @property
    def idle(self) -> bool:
        """Nothing held back: the next whole, aligned frame is a frame as it is."""
        return not len(self._pending)

    def cut(self, pos48: int, frames: list[av.AudioFrame]) -> list[tuple[int, np.ndarray]]:
        """``pos48``: where the decoded audio starts on the RTP clock (unwrapped, first packet = 0)."""
        if self._resampler is None and frames and (frames[0].layout.nb_channels != 1 or frames[0].format.name != "s16"):
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=self.rate)  # aiortc's stereo
        if self._resampler is not None:
            frames = [out for f in frames for out in self._resampler.resample(f)]
        if not frames:
            return []
        pcm = frames[0].to_ndarray().reshape(-1) if len(frames) == 1 else np.concatenate(
            [f.to_ndarray().reshape(-1) for f in frames])
        return self.cut_pcm(pos48, pcm)

    def cut_pcm(self, pos48: int, pcm: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Mono int16 at ``rate`` (already decoded there) starting at ``pos48`` on the RTP clock."""
        pos = pos48 * self.rate // RTP_RATE
        if not len(self._pending) and pos % self.samples == 0 and len(pcm) == self.samples:
            self._pos = pos + self.samples  # the usual case: one whole, aligned 20 ms packet is one frame
            return [(pos // self.samples, pcm)]
        if abs(pos - (self._pos + len(self._pending))) > self._tol:  # a gap or a reorder: start a new run
            self._pending, self._pos = pcm, pos
        elif len(self._pending):
            self._pending = np.concatenate([self._pending, pcm])
        else:
            self._pending, self._pos = pcm, pos
        lead = -self._pos % self.samples  # align runs to frame boundaries
        if lead:
            self._pending, self._pos = self._pending[lead:], self._pos + lead
        out = []
        n = self.samples
        while len(self._pending) >= n:
            out.append((self._pos // n, self._pending[:n]))
            self._pending, self._pos = self._pending[n:], self._pos + n
        return out


class OpusInbound:
    """Stands in for aiortc's ``JitterBuffer`` in one audio ``RTCRtpReceiver`` (see the module docstring)."""

    capacity = 16  # aiortc reads nothing else from its jitter buffer, but keep its shape

    def __init__(self, buffer: AdaptiveJitterBuffer | FastJitterBuffer, rate: int,
                 clock: Callable[[], float] = time.monotonic,
                 on_frame: Callable[[int, np.ndarray, float], None] | None = None) -> None:
        self.buffer, self.clock, self.on_frame, self.rate = buffer, clock, on_frame, rate
        # on the C buffer, a packet is timed, unwrapped and (one aligned frame, the usual case) put in one C call;
        # that clock is time.monotonic's, and a per-frame hook needs the frames here: then Python does it all
        self._fast = buffer if isinstance(buffer, FastJitterBuffer) and clock is time.monotonic and on_frame is None \
            else None
        # libopus decodes straight to mono at the mixer rate; PyAV (48 kHz, resampled) when it is not found
        self._opus = libopus.Decoder(rate) if libopus.available() else None
        if self._opus is None:
            self._decoder = av.CodecContext.create("libopus", "r")
            self._decoder.format, self._decoder.layout, self._decoder.sample_rate = "s16", "mono", RTP_RATE
        self._cutter = FrameCutter(rate, buffer.samples)
        self._ts0: int | None = None
        self._ts_raw = 0
        self._ts = 0  # unwrapped, relative to the first packet
        self._packets = 0
        self.decode_errors = 0
        self._last_arrival: float | None = None

    @property
    def fast(self) -> bool:
        """Packets go through the C buffer's packet path."""
        return self._fast is not None

    @property
    def jitter_buffer(self) -> FastJitterBuffer | None:
        """The C buffer the direct path's C receiver puts frames in itself (see :meth:`add_cut`), or None."""
        return self._fast

    @property
    def cutter_idle(self) -> bool:
        return self._cutter.idle

    def add_cut(self, pcm: np.ndarray) -> None:
        """A packet the C receiver decoded, timed and unwrapped into :attr:`jitter_buffer` but did not put there (not
        one whole, aligned frame, or this cutter held samples): cut it into frames here."""
        assert self._fast is not None
        now, pos = self._fast.last_packet
        self._file(self._cutter.cut_pcm(pos, pcm), now)

    @property
    def packets(self) -> int:
        return self._fast.packets if self._fast is not None else self._packets

    @property
    def last_arrival(self) -> float | None:
        """When the last packet arrived (``clock``), None before the first."""
        return self._fast.packet_arrival if self._fast is not None else self._last_arrival

    @property
    def decoder(self) -> libopus.Decoder | None:
        """The leg's libopus decoder (the direct path's C receiver decodes with it); None: PyAV decodes."""
        return self._opus

    def add(self, packet: Any) -> tuple[bool, None]:
        """aiortc's receiver hands over a depayloaded packet (its jitter buffer's place)."""
        self.add_payload(packet.timestamp, getattr(packet, "_data", packet.payload))
        return False, None

    def add_payload(self, timestamp: int, data: bytes) -> None:
        """One Opus payload with its RTP timestamp (:mod:`.rtp_direct` calls this straight from the socket)."""
        now, pos = self._arrived(timestamp)
        if not data:
            return
        try:
            if self._opus is not None:
                cut = self._cutter.cut_pcm(pos, self._opus.decode(data))
            else:
                cut = self._cutter.cut(pos, self._decoder.decode(av.Packet(data)))
        except (av.FFmpegError, libopus.OpusError):
            self.decode_errors += 1  # a corrupt packet is a lost packet: the buffer conceals it
            return
        self._file(cut, now)

    def add_pcm(self, timestamp: int, pcm: np.ndarray | None, decode_failed: bool = False) -> None:
        """One packet already decoded (by :mod:`.rtp_fast`, with this inbound's own decoder): ``pcm`` mono at the
        mixer rate, or None for an empty payload or one that did not decode (``decode_failed``)."""
        fast = self._fast
        if fast is None:
            now, pos = self._arrived(timestamp)
        elif fast.packet(timestamp, pcm, self.rate, self._cutter.idle):
            return  # one aligned frame: already in the buffer
        else:
            now, pos = fast.last_packet
        if pcm is None:
            self.decode_errors += decode_failed
            return
        self._file(self._cutter.cut_pcm(pos, pcm), now)

    def _arrived(self, timestamp: int) -> tuple[float, int]:
        if self._fast is not None:  # one timeline for both paths: a leg's packets come through aiortc first
            self._fast.packet(timestamp, None, self.rate, False)
            return self._fast.last_packet
        now = self.clock()
        self._last_arrival = now
        self._packets += 1
        return now, self._unwrap(timestamp)

    def _file(self, cut: list[tuple[int, np.ndarray]], now: float) -> None:
        for number, pcm in cut:
            self.buffer.put(number, pcm, now)
            if self.on_frame is not None:
                self.on_frame(number, pcm, now)

    def _unwrap(self, ts: int) -> int:
        if self._ts0 is None:
            self._ts0 = self._ts_raw = ts
            return 0
        delta = (ts - self._ts_raw) & 0xFFFFFFFF
        if delta >= 1 << 31:  # an older packet (reordered)
            delta -= 1 << 32
        self._ts_raw = ts
        self._ts += delta
        return self._ts

    def remove(self, count: int) -> None:  # part of JitterBuffer's shape; aiortc does not call it on audio
        pass


def install(receiver: object, inbound: OpusInbound) -> bool:
    """Put ``inbound`` in place of ``receiver``'s audio jitter buffer; False if aiortc's layout is not as pinned."""
    current = getattr(receiver, _SLOT, None)
    if not isinstance(current, JitterBuffer):
        log.warning("webrtc.inbound_shim_unavailable", found=type(current).__name__)
        return False
    setattr(receiver, _SLOT, inbound)
    return True
