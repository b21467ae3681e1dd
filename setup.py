"""Builds the optional C parts (the fused mix kernel, the direct RTP path's per-packet work); the rest of the
metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "bargein.mixer._kernel",
            sources=["mixer/_kernel.c"],
            extra_compile_args=["-O3", "-fno-math-errno", "-fno-trapping-math"],
            optional=True,  # without a C compiler the numpy path is used
        ),
        Extension(
            "bargein.signaling._rtpfast",
            sources=["signaling/_rtpfast.c", "signaling/_jitter.c"],
            # no fused multiply-add: the adaptive buffer must round as its Python reference does
            extra_compile_args=["-O2", "-ffp-contract=off"],
            optional=True,  # without it the direct RTP path runs in Python
        ),
    ]
)
