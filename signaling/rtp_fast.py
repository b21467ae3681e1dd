"""The direct RTP path's per-packet work in C (signaling/_rtpfast.c): one call per tick out, one per datagram in.

:mod:`.rtp_direct` in Python costs, per leg and packet, a header pack, a cffi SRTP call with its buffer
copies, a ``sendto`` through the event loop's transport, and inbound an unprotect, a header parse, aiortc's
``StreamStatistics.add`` and a ctypes decode. Here:

- **out**: :class:`SendTable` holds one row per leg (socket, SRTP session, sequence number, timestamp,
  counters, destination, header extension) written only when a leg attaches or detaches. Each tick,
  :meth:`SendTable.send` encodes every group's mix once and sends every leg's packet in one C call:
  no Python per leg. aiortc's sender-report counters are refreshed from the table every 8 ticks.
- **in**: :class:`Receiver` does SRTP unprotect, header parse, the receiver statistics and the Opus
  decode of one datagram in one C call; the statistics are copied into aiortc's ``StreamStatistics``
  (which its receiver reports read) every 25 ticks and when the leg detaches.

The codec and SRTP functions are the very ones Python uses (libopus from :mod:`.libopus`, libsrtp from
pylibsrtp's cffi binding), passed to C as addresses, with the same encoder, decoder and session objects.
:func:`available` is False when the extension was not built, libopus was not found, or pylibsrtp's binding
is not as expected (``BARGEIN_RTP_FAST=0`` forces that too): :mod:`.rtp_direct` then stays in Python.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
import socket
import struct
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from bargein.mixer.kernel import address as _address

from . import libopus

log = structlog.get_logger("bargein.webrtc")

# the leg table's fields (int64 each), as in _rtpfast.c
(L_FD, L_SRTP, L_GROUP, L_SEQ, L_TS0, L_STEP, L_FRAMES, L_SENT, L_OCTETS, L_ERRORS, L_LAST_TS, L_HEAD, L_SSRC,
 L_EXTLEN, L_ADDRLEN, L_SPARE, L_FIELDS) = range(17)
BLOB, EXT_AT = 96, 32  # bytes per leg: destination sockaddr at 0, header extension at EXT_AT
SCRATCH = 1500  # bytes per group payload
# a leg's receive context
(C_UNPROTECT, C_SRTP, C_DECODE, C_DECODER, C_PT, C_WORK, C_WORK_SIZE, C_PCM, C_MAX_PCM, C_CLOCKRATE, C_JB, C_RATE,
 C_CUTTER_BUSY, C_FIELDS) = range(14)
(S_SSRC, S_BASE_SEQ, S_MAX_SEQ, S_CYCLES, S_RECEIVED, S_JITTER_Q4, S_LAST_ARRIVAL, S_LAST_TS, S_FIELDS) = range(9)
I_SEQ, I_TS, I_SSRC, I_FIELDS = range(4)
RX_NOT_OURS, RX_UNPROTECT, RX_MALFORMED, RX_NEW_SSRC, RX_DECODE, RX_EMPTY, RX_QUEUED = -1, -2, -3, -4, -5, -6, -7
WORK_SIZE = 2048

_p = ctypes.c_void_p
_i64 = ctypes.c_int64


def _load() -> tuple[Any, int, int, int, int] | None:
    if os.environ.get("BARGEIN_RTP_FAST", "1") == "0" or not libopus.available():
        return None
    lib = None
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = Path(__file__).parent / f"_rtpfast{suffix}"
        if path.exists():
            try:
                lib = ctypes.CDLL(str(path))
                send, receive = lib.bargein_rtp_send_rows, lib.bargein_rtp_receive
            except (OSError, AttributeError) as exc:  # another platform's build, or a stale one
                log.warning("webrtc.rtp_fast_unloadable", path=str(path), error=str(exc))
                return None
            send.argtypes = [_p, _p, _p, _i64, _p, _i64, _p, _p, _p, _p, _i64]
            send.restype = _i64
            receive.argtypes = [_p, ctypes.c_char_p, _i64]
            receive.restype = _i64
            break
    if lib is None:
        return None
    try:
        from pylibsrtp._binding import ffi
        from pylibsrtp._binding import lib as srtp

        protect = int(ffi.cast("uintptr_t", ffi.addressof(srtp, "srtp_protect")))
        unprotect = int(ffi.cast("uintptr_t", ffi.addressof(srtp, "srtp_unprotect")))
    except (ImportError, AttributeError, TypeError) as exc:
        log.warning("webrtc.rtp_fast_no_srtp", error=repr(exc))
        return None
    opus = libopus._lib
    assert opus is not None
    encode = ctypes.cast(opus.opus_encode, _p).value
    decode = ctypes.cast(opus.opus_decode, _p).value
    assert encode and decode
    return lib, protect, unprotect, encode, decode


_LOADED = _load()


def available() -> bool:
    return _LOADED is not None


def srtp_address(session: Any) -> int:
    """The ``srtp_t`` of a pylibsrtp ``Session`` (its private cffi handle; AttributeError if not there)."""
    from pylibsrtp._binding import ffi

    return int(ffi.cast("uintptr_t", session._srtp[0]))


def sockaddr(family: int, addr: tuple[Any, ...]) -> bytes:
    """``addr`` (host, port) as the C ``struct sockaddr_in`` / ``sockaddr_in6`` for ``sendto``."""
    host, port = addr[0], int(addr[1])
    if family == socket.AF_INET:
        return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_pton(socket.AF_INET, host) \
            + bytes(8)
    if family == socket.AF_INET6:  # getaddrinfo resolves a link-local "fe80::1%eth0" to its scope id
        _, _, flow, scope = socket.getaddrinfo(host, port, socket.AF_INET6, socket.SOCK_DGRAM,
                                               flags=socket.AI_NUMERICHOST)[0][4]
        if len(addr) > 3 and addr[3]:
            scope = int(addr[3])
        return (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", port, flow)
                + socket.inet_pton(socket.AF_INET6, host.split("%")[0]) + struct.pack("=I", scope))
    raise ValueError(f"address family {family}")


class SendTable:
    """The outbound state of every leg on the C path (rows never move; a free row has group -1)."""

    def __init__(self) -> None:
        assert _LOADED is not None
        self._lib, self._protect = _LOADED[0], _LOADED[1]
        self._encode = _LOADED[3]
        self.legs = np.zeros((0, L_FIELDS), np.int64)
        self.blobs = np.zeros((0, BLOB), np.uint8)
        self._free: list[int] = []
        self.owners: dict[int, Any] = {}  # row -> its DirectRtp (keeps its SRTP session and socket alive)
        self._fds: dict[int, int] = {}  # row -> our duplicate of the leg's socket
        self._scratch = np.zeros((0, SCRATCH), np.uint8)
        self._glen = np.zeros(0, np.int64)

    def add(self, direct: Any, srtp: int, sock: Any, remote: tuple[Any, ...], ext: bytes, state: dict[str, int]) -> int:
        """A row for ``direct`` (its current ``state``: seq, ts0, step, frames, sent, octets, send_errors, head,
        ssrc); raises ValueError/OSError when the leg cannot go on the C path."""
        if len(ext) > BLOB - EXT_AT:
            raise ValueError("header extension too long")
        addr = sockaddr(sock.family, remote)
        fd = os.dup(sock.fileno())  # ours: the socket stays open for the C path until the row is freed
        if not self._free:
            old = len(self.legs)
            grown = max(8, 2 * old)
            self.legs = np.concatenate([self.legs, np.zeros((grown - old, L_FIELDS), np.int64)])
            self.legs[old:, L_GROUP] = -1
            self.legs[old:, L_FD] = -1
            self.blobs = np.concatenate([self.blobs, np.zeros((grown - old, BLOB), np.uint8)])
            self._free = list(range(grown - 1, old - 1, -1))
        row = self._free.pop()
        r = self.legs[row]
        r[:] = 0
        r[L_FD], r[L_SRTP], r[L_GROUP] = fd, srtp, -1
        r[L_SEQ], r[L_TS0], r[L_STEP], r[L_FRAMES] = state["seq"], state["ts0"], state["step"], state["frames"]
        r[L_SENT], r[L_OCTETS], r[L_ERRORS] = state["sent"], state["octets"], state["send_errors"]
        r[L_LAST_TS], r[L_HEAD], r[L_SSRC] = state["last_ts"], state["head"], state["ssrc"]
        r[L_EXTLEN], r[L_ADDRLEN] = len(ext), len(addr)
        self.blobs[row] = 0
        self.blobs[row, : len(addr)] = np.frombuffer(addr, np.uint8)
        self.blobs[row, EXT_AT: EXT_AT + len(ext)] = np.frombuffer(ext, np.uint8)
        self.owners[row] = direct
        self._fds[row] = fd
        return row

    def remove(self, row: int) -> dict[str, int]:
        """Free ``row``; returns its state for the Python path to go on from."""
        r = self.legs[row]
        state = {"seq": int(r[L_SEQ]), "frames": int(r[L_FRAMES]), "sent": int(r[L_SENT]),
                 "octets": int(r[L_OCTETS]), "send_errors": int(r[L_ERRORS]), "last_ts": int(r[L_LAST_TS])}
        r[L_GROUP], r[L_FD], r[L_SRTP] = -1, -1, 0
        self.owners.pop(row, None)
        fd = self._fds.pop(row, None)
        if fd is not None:
            os.close(fd)
        self._free.append(row)
        return state

    def set_groups(self, rows: list[int], groups: list[int]) -> None:
        """Which encode group each row's leg hears (-1 for the rows not listed: nothing sent)."""
        live = self.legs[:, L_FD] >= 0
        self.legs[live, L_GROUP] = -1
        if rows:
            self.legs[rows, L_GROUP] = groups

    def send(self, encoders: np.ndarray, pcm: np.ndarray) -> int:
        """Encode group ``g``'s mix ``pcm[g]`` with the libopus encoder at address ``encoders[g]`` and send it to
        every leg of the group. Returns the packets sent, or ``-1 - g`` when group g's encode failed."""
        pcm = np.ascontiguousarray(pcm, np.int16)  # (groups, n): alive while send_rows reads it
        return self.send_rows(encoders, _address(pcm) + np.arange(len(encoders), dtype=np.int64) * pcm.strides[0],
                              pcm.shape[1])

    def send_rows(self, encoders: np.ndarray, rows: np.ndarray, n: int) -> int:
        """:meth:`send` with group ``g``'s mix of ``n`` samples at address ``rows[g]`` (int64), read in place
        (:meth:`MixerEngine.output_addresses`)."""
        g = len(encoders)
        if len(self._glen) < g:
            self._glen = np.zeros(2 * g, np.int64)
            self._scratch = np.zeros((2 * g, SCRATCH), np.uint8)
        return int(self._lib.bargein_rtp_send_rows(
            self._encode, self._protect, _address(encoders), g, _address(rows), n,
            _address(self._scratch), _address(self._glen), _address(self.legs), _address(self.blobs), len(self.legs)))

    def payload(self, g: int) -> bytes:
        """Group ``g``'s payload of the last :meth:`send` (for legs of the group not on the C path)."""
        return self._scratch[g, : self._glen[g]].tobytes()

    def close(self) -> None:
        for row in list(self._fds):
            self.remove(row)


class Receiver:
    """One leg's inbound datagrams in one C call each (see the module docstring)."""

    def __init__(self, srtp: int, decoder: libopus.Decoder, pt: int, clockrate: int, buffer: Any = None,
                 rate: int = 0) -> None:
        """``buffer``: the leg's :class:`~.jitter_fast.FastJitterBuffer` (decoded frames at the mixer ``rate`` go
        straight into it: ``RX_QUEUED``), or None (every decoded packet is returned)."""
        assert _LOADED is not None
        self._receive = _LOADED[0].bargein_rtp_receive
        self._work = np.zeros(WORK_SIZE, np.uint8)
        self.ctx = np.zeros(C_FIELDS + S_FIELDS + I_FIELDS, np.int64)
        c = self.ctx
        c[C_UNPROTECT], c[C_SRTP], c[C_DECODE], c[C_DECODER] = _LOADED[2], srtp, _LOADED[4], decoder._dec
        c[C_PT], c[C_WORK], c[C_WORK_SIZE] = pt, _address(self._work), WORK_SIZE
        c[C_PCM], c[C_MAX_PCM], c[C_CLOCKRATE] = decoder._addr, decoder._max, clockrate
        if buffer is not None:
            c[C_JB], c[C_RATE] = buffer.address, rate
        self._buffer = buffer  # alive while C holds its address
        self.stats = c[C_FIELDS: C_FIELDS + S_FIELDS]  # views: what C writes
        self.info = c[C_FIELDS + S_FIELDS:]
        self.stats[S_SSRC] = -1
        self._ctx = _address(c)
        self._decoder = decoder  # its buffer is where C decodes to
        self.call = (self._receive, self._ctx, decoder._pcm)  # for a caller that inlines receive + pcm

    def receive(self, data: bytes) -> int:
        """One datagram: ``timestamp << 16 | samples`` decoded (see :meth:`pcm`), or an ``RX_*`` code (< 0)."""
        return self._receive(self._ctx, data, len(data))

    def cutter_busy(self, busy: bool) -> None:
        """The inbound's frame cutter holds samples: until it is idle again, every packet goes back to it."""
        self.ctx[C_CUTTER_BUSY] = int(busy)

    def pcm(self, n: int) -> np.ndarray:
        """A copy of the last ``n`` samples decoded."""
        return self._decoder._pcm[:n].copy()

    # the statistics row <-> aiortc's StreamStatistics (its receiver reports read that)
    def load(self, ssrc: int, stats: Any) -> None:
        s = self.stats
        s[S_SSRC] = ssrc
        s[S_BASE_SEQ] = -1 if stats.base_seq is None else stats.base_seq
        s[S_MAX_SEQ] = -1 if stats.max_seq is None else stats.max_seq
        s[S_CYCLES], s[S_RECEIVED], s[S_JITTER_Q4] = stats.cycles, stats.packets_received, stats._jitter_q4
        s[S_LAST_ARRIVAL] = stats._last_arrival or 0
        s[S_LAST_TS] = -1 if stats._last_timestamp is None else stats._last_timestamp

    def store(self, stats: Any) -> None:
        s = self.stats.tolist()
        stats.base_seq = None if s[S_BASE_SEQ] < 0 else s[S_BASE_SEQ]
        stats.max_seq = None if s[S_MAX_SEQ] < 0 else s[S_MAX_SEQ]
        stats.cycles, stats.packets_received, stats._jitter_q4 = s[S_CYCLES], s[S_RECEIVED], s[S_JITTER_Q4]
        if s[S_LAST_TS] >= 0:
            stats._last_arrival, stats._last_timestamp = s[S_LAST_ARRIVAL], s[S_LAST_TS]
