"""Loader for the optional fused C mix kernel (mixer/_kernel.c), called through ctypes.

The numpy path in engine.py is the reference; the kernel must give the same output (tests check
this) and is used only when it was built. ``BARGEIN_MIX_KERNEL=numpy`` forces the numpy path.
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

_i64 = ctypes.c_int64
_ptr = ctypes.c_void_p


def _load() -> ctypes.CDLL | None:
    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = here / f"_kernel{suffix}"
        if path.exists():
            try:
                lib = ctypes.CDLL(str(path))
            except OSError as exc:  # built for another platform
                log.warning("mixer.kernel_unloadable", path=str(path), error=str(exc))
                return None
            fn = lib.bargein_mix_pool
            fn.argtypes = [_ptr, _ptr, _ptr, _ptr, _i64, _i64, _i64, _i64, ctypes.c_int]
            fn.restype = ctypes.c_int
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


def mix_pool(ring: np.ndarray, src: np.ndarray, gains: np.ndarray, out: np.ndarray, zero_row: int,
             soft: bool) -> None:
    """Mix ``src.shape[0]`` call rows of one pool into ``out`` (all arrays C-contiguous)."""
    assert _LIB is not None
    n, w = src.shape
    src = np.ascontiguousarray(src)
    rc = _LIB.bargein_mix_pool(ring.ctypes.data, src.ctypes.data, gains.ctypes.data, out.ctypes.data,
                               n, w, ring.shape[1], zero_row, int(soft))
    if rc != 0:
        raise ValueError(f"mix kernel refused frames of {ring.shape[1]} samples")

