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
POOL_FIELDS = 8  # ring, wr, rd, dropped, depth, plane_stride, nt, (unused): one row per pool width

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
                tick, push = lib.bargein_tick_rows, lib.bargein_push
            except (OSError, AttributeError) as exc:  # built for another platform, or a stale build
                log.warning("mixer.kernel_unloadable", path=str(path), error=str(exc))
                return None
            tick.argtypes = [_ptr, _ptr, _ptr, _ptr, _ptr, _ptr, _i64, _i64, _i64, _i64, _i64, _i64, _int, _int]
            tick.restype = _int
            push.argtypes = [_ptr, _i64, _ptr, _i64, _ptr, _i64, _ptr, _i64]
            push.restype = _i64
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


def tick_rows(ring: np.ndarray, wr: np.ndarray, rd: np.ndarray, missing: np.ndarray, gains: np.ndarray,
              out: np.ndarray, row0: int, row1: int, depth: int, plane_stride: int, soft: bool, nt: bool) -> None:
    """Consume one frame per leg and mix call rows ``[row0, row1)`` of one pool (all arrays C-contiguous,
    ``wr``/``rd``/``missing`` of shape ``(cap, w)``, ``out`` of shape ``(cap, w, ns)``)."""
    assert _LIB is not None
    w, ns = out.shape[1], out.shape[2]
    rc = _LIB.bargein_tick_rows(ring.ctypes.data, wr.ctypes.data, rd.ctypes.data, missing.ctypes.data,
                                gains.ctypes.data, out.ctypes.data, row0, row1, w, ns, depth, plane_stride,
                                int(soft), int(nt))
    if rc != 0:
        raise ValueError(f"mix kernel refused frames of {ns} samples or calls of {w} legs")


def push(leg_loc: np.ndarray, legs: np.ndarray, frames: np.ndarray, pools: np.ndarray) -> int:
    """Queue ``frames[i]`` for ``legs[i]``; returns -1, or the index of the first unknown leg (nothing written).
    ``pools`` is the ``(widths, POOL_FIELDS)`` table of :meth:`MixerEngine._pool_table`."""
    assert _LIB is not None
    return int(_LIB.bargein_push(leg_loc.ctypes.data, leg_loc.shape[0], legs.ctypes.data, legs.shape[0],
                                 frames.ctypes.data, frames.shape[1], pools.ctypes.data, pools.shape[0]))
