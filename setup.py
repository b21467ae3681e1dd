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
            sources=["signaling/_rtpfast.c"],
            extra_compile_args=["-O2"],
            optional=True,  # without it the direct RTP path runs in Python
        ),
    ]
)
