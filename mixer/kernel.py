"""Loader for the optional fused C kernels (mixer/_kernel.c), called through ctypes.

The numpy path in engine.py is the reference; the kernel must give the same output (tests check
this) and is used only when it was built. ``BARGEIN_MIX_KERNEL=numpy`` forces the numpy path.
ctypes releases the GIL for the length of each call, so worker threads mix in parallel and the
event loop keeps running while a tick computes in another thread.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import os
from pathlib import Path

import numpy as np
import structlog

log = structlog.get_logger("bargein.mixer")

MAX_SAMPLES = 4096  # frame length limit of the kernel's stack scratch (see _kernel.c)
MAX_LEGS = 64
POOL_FIELDS = 8  # ring, wr, rd, dropped, depth, plane_stride, nt, src: one row per pool width
CHUNK_FIELDS = 8  # pool arrays address, row0, row1, w, ns, depth, plane_stride, nt: one row per chunk of a tick
# the arrays of one pool the tick reads and writes, in the order of _kernel.c's pool_arrays
POOL_ARRAYS = ("ring", "wr", "rd", "missing", "src", "gains", "out", "rec_id", "rec_gains", "rec_out")

_i64 = ctypes.c_int64
_ptr = ctypes.c_void_p
_int = ctypes.c_int


def _load() -> ctypes.CDLL | None:
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = here / f"_kernel{suffix}"
        if path.exists():
            try:
                lib = ctypes.CDLL(str(path))
                tick, push, chunks = lib.bargein_tick_rows, lib.bargein_push, lib.bargein_tick_chunks
            except (OSError, AttributeError) as exc:  # built for another platform, or a stale build
                log.warning("mixer.kernel_unloadable", path=str(path), error=str(exc))
                return None
            tick.argtypes = [_ptr, _i64, _i64, _i64, _i64, _i64, _i64, _int, _int]
            tick.restype = _int
            push.argtypes = [_ptr, _i64, _ptr, _i64, _ptr, _ptr, _i64, _ptr, _i64, _int]
            push.restype = _i64
            chunks.argtypes = [_ptr, _i64, _ptr, _int, _int]
            chunks.restype = _i64
            return lib
    return None


_LIB = _load()


def available() -> bool:
    return _LIB is not None


def default_kernel() -> str:
    forced = os.environ.get("BARGEIN_MIX_KERNEL", "").lower()
    if forced in ("numpy", "c"):
        return forced
    return "c" if _LIB is not None else "numpy"


def address(a: np.ndarray) -> int:
    """Where ``a``'s data starts (the kernels take addresses, computed once per allocation: cheaper per call)."""
    assert a.flags.c_contiguous
    return int(a.__array_interface__["data"][0])


def tick_chunks(chunks: int, n: int, counters: int, soft: bool, wait: bool) -> int:
    """Mix chunks of a tick (``chunks``: address of an ``(n, CHUNK_FIELDS)`` int64 array) until none is left, taking
    the next one from the shared ``counters`` (address of two int64, both 0 at the start of the tick: next chunk,
    chunks finished). Call it from every mix thread at once; the one that calls with ``wait`` returns when every
    chunk is mixed, by whichever thread. Returns how many chunks this thread mixed."""
    assert _LIB is not None
    done = int(_LIB.bargein_tick_chunks(chunks, n, counters, int(soft), int(wait)))
    if done < 0:
        raise ValueError("mix kernel refused frames or calls too large for it")
    return done


def push(leg_loc: np.ndarray, legs: np.ndarray, frames: np.ndarray, pools: np.ndarray, lend: bool = False,
         rows: np.ndarray | None = None) -> int:
    """Queue ``frames[i]`` (or ``frames[rows[i]]``, rows checked by the caller) for ``legs[i]``; returns -1, or the
    index of the first unknown leg (nothing written). ``pools`` is the ``(widths, POOL_FIELDS)`` table of
    ``MixerEngine._pool_table``. With ``lend`` a leg with nothing queued keeps the address of its frame instead of
    a copy: the tick must follow before ``frames`` changes or goes away (``MixerEngine.tick`` with input does both
    under its lock)."""
    assert _LIB is not None
    return int(_LIB.bargein_push(address(leg_loc), leg_loc.shape[0], address(legs), legs.shape[0], address(frames),
                                 None if rows is None else address(rows), frames.shape[1], address(pools),
                                 pools.shape[0], int(lend)))
