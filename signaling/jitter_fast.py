"""The adaptive inbound buffer in C (signaling/_jitter.c): :class:`FastJitterBuffer`, the same algorithm and
interface as :class:`~.jitter.AdaptiveJitterBuffer`, which stays the reference (the tests run both on the same
arrivals and compare every frame and counter).

A media worker's per-leg work in Python was, per packet, the buffer's ``put`` behind the inbound's
timestamp unwrap and frame cutting, and per tick each leg's ``pop``: run between idle periods, on cold caches,
that Python cost about as much as the codec. Here a decoded packet goes into the buffer in one C call
(:meth:`FastJitterBuffer.packet`: the unwrap, the common case of one aligned 20 ms frame, and the put), and the
tick's feed pulls every leg's frame in one call (:func:`pop_many`).

:func:`available` is False when the extension was not built or ``BARGEIN_JITTER_FAST=0`` (benchmarks compare
both); the gateway then uses the Python class.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from bargein.mixer.kernel import address

from .jitter import INBOUND_COUNTERS, JitterStats, jitter_stats

log = structlog.get_logger("bargein.webrtc")

# jb_t's first fields (int64 each), as in _jitter.c
(J_RECEIVED, J_PLAYED, J_CONCEALED, J_SHRUNK, J_LATE, J_OVERFLOW, J_RESYNCS, J_SKIPPED, J_PACKETS, J_DEPTH,
 J_COUNTERS) = range(11)

_p, _i64, _f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double


def _load() -> ctypes.CDLL | None:
    if os.environ.get("BARGEIN_JITTER_FAST", "1") == "0":
        return None
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = Path(__file__).parent / f"_rtpfast{suffix}"
        if path.exists():
            return _bind(path)
    return None


def _bind(path: Path) -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(str(path))
        fns = {name: getattr(lib, f"bargein_jb_{name}") for name in
               ("bytes", "init", "put", "pop", "pop_many", "packet", "jitter", "packet_arrival",
                "last_packet")}
    except (OSError, AttributeError) as exc:  # another platform's build, or one from before this file
        log.warning("webrtc.jitter_fast_unloadable", path=str(path), error=str(exc))
        return None
    fns["bytes"].argtypes, fns["bytes"].restype = [_i64] * 4, _i64
    fns["init"].argtypes = [_p] + [_i64] * 8 + [_f64] * 5 + [_p, _p]
    fns["init"].restype = None
    fns["put"].argtypes, fns["put"].restype = [_p, _i64, _p, _f64], None
    fns["pop"].argtypes, fns["pop"].restype = [_p, _f64, _p], _i64
    fns["pop_many"].argtypes, fns["pop_many"].restype = [_p, _i64, _f64, _p, _p], _i64
    fns["packet"].argtypes, fns["packet"].restype = [_p, _i64, _p, _i64, _i64, _i64, _p, _p], _i64
    fns["jitter"].argtypes, fns["jitter"].restype = [_p], _f64
    fns["packet_arrival"].argtypes, fns["packet_arrival"].restype = [_p], _f64
    fns["last_packet"].argtypes, fns["last_packet"].restype = [_p, _p, _p], None
    return lib


_LIB = _load()


def available() -> bool:
    return _LIB is not None


class _Counter:
    """One of the C buffer's counters, read from its state block (what C counts, as an int)."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __get__(self, buf: FastJitterBuffer | None, owner: type | None = None) -> Any:
        return self if buf is None else int(buf._counters[self.index])


class FastJitterBuffer:
    """:class:`~.jitter.AdaptiveJitterBuffer` in C: the same constructor, ``put``, ``pop``, counters and ``stats``,
    plus :meth:`packet` for the inbound's packet path and ``address`` for :func:`pop_many`."""

    def __init__(self, samples: int, *, period_s: float = 0.02, capacity: int = 50, window: int = 250,
                 quantile: float = 0.95, hold: int = 25, margin_s: float = 0.003, resync_frames: int = 25,
                 resync_after_s: float = 1.0, max_grow_frames: int = 10, max_delay_s: float = 0.2,
                 jump_frames: int = 5) -> None:
        if _LIB is None:
            raise RuntimeError("the C adaptive buffer was not built (pip install -e . builds it)")
        if samples < 8 or capacity < 2 or window < 1 or hold < 1:
            raise ValueError("samples >= 8, capacity >= 2, window >= 1 and hold >= 1 are required")
        self.samples, self.period, self.margin = samples, period_s, margin_s
        ramp = min(samples, max(8, samples // 8))  # as the Python class: 2.5 ms fades
        up = np.linspace(0.0, 1.0, ramp, endpoint=False, dtype=np.float32)
        fade = np.linspace(1.0, 0.0, samples, dtype=np.float32)
        nbytes = _LIB.bargein_jb_bytes(samples, capacity, window, ramp)
        self._mem = np.zeros(-(-nbytes // 8), np.int64)  # the buffer's whole state, 8-byte aligned
        self.address = address(self._mem)
        _LIB.bargein_jb_init(self.address, samples, capacity, window, hold, resync_frames, max_grow_frames,
                             jump_frames, ramp, period_s, margin_s, resync_after_s, quantile, max_delay_s,
                             address(up), address(fade))
        self._counters = self._mem[:J_COUNTERS]  # a view: what C counts
        self._out = np.empty(samples, np.int16)
        self._arrival = np.zeros(1, np.float64)
        self._pos48 = np.zeros(1, np.int64)
        self._io = (address(self._arrival), address(self._pos48))

    # ------------------------------------------------------------------ in
    def put(self, number: int, pcm: np.ndarray, arrival: float) -> None:
        """Frame ``number`` (mono int16, ``samples`` long) arrived at ``arrival``."""
        if pcm.shape != (self.samples,) or pcm.dtype != np.int16:
            raise ValueError(f"frame must be int16 of shape ({self.samples},), got {pcm.dtype} {pcm.shape}")
        _LIB.bargein_jb_put(self.address, number, address(np.ascontiguousarray(pcm)), arrival)  # type: ignore[union-attr]

    def packet(self, timestamp: int, pcm: np.ndarray | None, rate: int, cutter_idle: bool) -> bool:
        """A packet arrived now (``time.monotonic()``): its RTP timestamp is unwrapped here, and ``pcm`` (mono
        int16 at ``rate``, already decoded) goes into the buffer when it is one aligned frame and the caller's
        cutter holds nothing. False: the caller cuts it from :attr:`last_pos48` (or there was no PCM)."""
        if pcm is None:
            return bool(_LIB.bargein_jb_packet(self.address, timestamp, None, -1, rate, 0, *self._io))  # type: ignore[union-attr]
        return bool(_LIB.bargein_jb_packet(self.address, timestamp, address(pcm), len(pcm), rate,  # type: ignore[union-attr]
                                           int(cutter_idle), *self._io))

    @property
    def last_packet(self) -> tuple[float, int]:
        """The last packet's arrival time and unwrapped position on the 48 kHz RTP clock (whether it came through
        :meth:`packet` or straight from the C receive path)."""
        _LIB.bargein_jb_last_packet(self.address, *self._io)  # type: ignore[union-attr]
        return float(self._arrival[0]), int(self._pos48[0])

    @property
    def packet_arrival(self) -> float | None:
        t = _LIB.bargein_jb_packet_arrival(self.address)  # type: ignore[union-attr]
        return None if t < 0 else t

    # ------------------------------------------------------------------ out
    def pop(self, now: float) -> np.ndarray | None:
        """The frame for the tick running at ``now``; None before the first frame ever arrived."""
        if not _LIB.bargein_jb_pop(self.address, now, address(self._out)):  # type: ignore[union-attr]
            return None
        return self._out.copy()

    # ------------------------------------------------------------------ inspection
    received, played, concealed = _Counter(J_RECEIVED), _Counter(J_PLAYED), _Counter(J_CONCEALED)
    shrunk, late, overflow = _Counter(J_SHRUNK), _Counter(J_LATE), _Counter(J_OVERFLOW)
    resyncs, skipped, packets, depth = _Counter(J_RESYNCS), _Counter(J_SKIPPED), _Counter(J_PACKETS), _Counter(J_DEPTH)

    @property
    def jitter_s(self) -> float:
        return float(_LIB.bargein_jb_jitter(self.address))  # type: ignore[union-attr]

    @property
    def stats(self) -> JitterStats:
        return jitter_stats(self)


assert set(INBOUND_COUNTERS) <= set(dir(FastJitterBuffer))


def pop_many(addresses: np.ndarray, now: float, out: np.ndarray, got: np.ndarray) -> int:
    """One frame from each buffer (``addresses``: int64, their :attr:`FastJitterBuffer.address`) for the tick at
    ``now`` into ``out`` (n x samples int16); ``got`` (n, uint8) is 1 where a buffer had one. Returns how many."""
    assert _LIB is not None and len(addresses) == len(out) == len(got)
    return int(_LIB.bargein_jb_pop_many(address(addresses), len(addresses), now, address(out), address(got)))
