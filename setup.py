"""Builds the optional fused mix kernel; the rest of the metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "bargein.mixer._kernel",
            sources=["mixer/_kernel.c"],
            extra_compile_args=["-O3", "-fno-math-errno", "-fno-trapping-math"],
            optional=True,  # without a C compiler the numpy path is used
        )
    ]
)
