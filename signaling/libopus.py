"""libopus called directly (ctypes) for the live legs' per-packet encode and decode.

PyAV wraps the same library, but each of its ``encode`` calls builds an ``AudioFrame`` and pushes it
through an FFmpeg filter graph (PyAV re-frames audio for every encoder with a fixed frame size), and each
``decode`` returns frames to convert back to numpy: tens of microseconds per packet on top of the codec,
on every leg, every 20 ms. Here a 20 ms int16 frame goes to ``opus_encode`` and a payload to
``opus_decode`` straight from and into numpy buffers. This is a thin binding of libopus's stable C API
(``opus.h``), not a codec: the library is the copy bundled with PyAV's wheel (``av.libs``), else the
system's ``libopus.so.0``. :func:`available` says whether one was found; callers keep PyAV otherwise.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os

import numpy as np

APPLICATION_VOIP = 2048
APPLICATION_RESTRICTED_LOWDELAY = 2051  # CELT only: 2.5 ms of look-ahead instead of 6.5 ms
APPLICATION = {"voip": APPLICATION_VOIP, "lowdelay": APPLICATION_RESTRICTED_LOWDELAY}  # PyAV's option names
_SET_BITRATE, _SET_MAX_BANDWIDTH, _SET_COMPLEXITY, _SET_SIGNAL = 4002, 4004, 4010, 4024
_GET_LOOKAHEAD = 4027
_SIGNAL_VOICE = 3001
BANDWIDTH = {"narrowband": 1101, "mediumband": 1102, "wideband": 1103, "superwideband": 1104, "fullband": 1105}
MAX_PACKET = 1500
MAX_FRAME_MS = 120  # the longest Opus packet


class OpusError(Exception):
    pass


def _load() -> ctypes.CDLL | None:
    candidates = []
    try:
        import av

        candidates += sorted(glob.glob(os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs", "libopus*.so*")))
    except ImportError:  # pragma: no cover - PyAV is a dependency
        pass
    system = ctypes.util.find_library("opus")
    if system:
        candidates.append(system)
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        vp, i32, ip = ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_int)
        lib.opus_encoder_create.restype, lib.opus_encoder_create.argtypes = vp, [i32, ctypes.c_int, ctypes.c_int, ip]
        # PCM in as bytes (c_char_p passes the buffer itself): cheaper than numpy's ``.ctypes`` per call
        lib.opus_encode.restype, lib.opus_encode.argtypes = i32, [vp, ctypes.c_char_p, ctypes.c_int, vp, i32]
        lib.opus_encoder_destroy.restype, lib.opus_encoder_destroy.argtypes = None, [vp]
        lib.opus_decoder_create.restype, lib.opus_decoder_create.argtypes = vp, [i32, ctypes.c_int, ip]
        lib.opus_decode.restype, lib.opus_decode.argtypes = ctypes.c_int, [vp, ctypes.c_char_p, i32, vp, ctypes.c_int,
                                                                           ctypes.c_int]
        lib.opus_decoder_destroy.restype, lib.opus_decoder_destroy.argtypes = None, [vp]
        lib.opus_strerror.restype, lib.opus_strerror.argtypes = ctypes.c_char_p, [ctypes.c_int]
        return lib
    return None


_lib = _load()


def available() -> bool:
    return _lib is not None


def _check(code: int) -> int:
    if code < 0:
        assert _lib is not None
        raise OpusError(_lib.opus_strerror(code).decode())
    return code


class Encoder:
    """One Opus encoder of int16 frames (``channels`` interleaved) at ``rate`` Hz."""

    def __init__(self, rate: int, channels: int = 1, *, bit_rate: int | None = None, complexity: int | None = None,
                 max_bandwidth: str | None = None, application: str = "voip") -> None:
        if _lib is None:
            raise OpusError("libopus not found")
        err = ctypes.c_int()
        self._enc = _lib.opus_encoder_create(rate, channels, APPLICATION[application], ctypes.byref(err))
        _check(err.value)
        self.channels = channels
        enc = ctypes.c_void_p(self._enc)
        for request, value in ((_SET_BITRATE, bit_rate), (_SET_COMPLEXITY, complexity),
                               (_SET_MAX_BANDWIDTH, BANDWIDTH.get(max_bandwidth or "", None)),
                               (_SET_SIGNAL, _SIGNAL_VOICE)):
            if value is not None:
                _check(_lib.opus_encoder_ctl(enc, ctypes.c_int(request), ctypes.c_int(value)))
        self._out = ctypes.create_string_buffer(MAX_PACKET)
        lookahead = ctypes.c_int32()
        _check(_lib.opus_encoder_ctl(enc, ctypes.c_int(_GET_LOOKAHEAD), ctypes.byref(lookahead)))
        self.lookahead = lookahead.value  # samples at ``rate``: the decoder's output lags the input by this

    def encode(self, pcm: np.ndarray) -> bytes:
        """One packet's audio (2.5, 5, 10, 20, 40, 60, 80, 100 or 120 ms of samples per channel; int16,
        C-contiguous) -> one Opus packet."""
        assert _lib is not None
        if pcm.dtype != np.int16:
            pcm = pcm.astype(np.int16)
        n = _check(_lib.opus_encode(self._enc, pcm.tobytes(), pcm.size // self.channels, self._out, MAX_PACKET))
        return self._out.raw[:n]

    def __del__(self) -> None:
        if getattr(self, "_enc", None) and _lib is not None:
            _lib.opus_encoder_destroy(self._enc)
            self._enc = None


class Decoder:
    """One Opus decoder to int16 (``channels``) at ``rate`` Hz (libopus resamples and down-mixes itself)."""

    def __init__(self, rate: int, channels: int = 1) -> None:
        if _lib is None:
            raise OpusError("libopus not found")
        err = ctypes.c_int()
        self._dec = _lib.opus_decoder_create(rate, channels, ctypes.byref(err))
        _check(err.value)
        self.channels = channels
        self._max = rate * MAX_FRAME_MS // 1000
        self._buf = (ctypes.c_int16 * (self._max * channels))()
        self._addr = ctypes.addressof(self._buf)
        self._pcm = np.frombuffer(self._buf, np.int16)

    def decode(self, payload: bytes) -> np.ndarray:
        """One packet -> a fresh int16 array (samples x channels, flattened); raises OpusError when corrupt."""
        assert _lib is not None
        n = _check(_lib.opus_decode(self._dec, payload, len(payload), self._addr, self._max, 0))
        return self._pcm[: n * self.channels].copy()

    def __del__(self) -> None:
        if getattr(self, "_dec", None) and _lib is not None:
            _lib.opus_decoder_destroy(self._dec)
            self._dec = None
