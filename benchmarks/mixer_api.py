"""CPU per tick of the mixer API a media worker calls every tick, for a few calls (the worker's fixed part).

    python -m benchmarks.mixer_api [--calls 0,1,4,8,32] [--ticks 20000] [--json PATH]

For each number of two-leg calls, in one process, hot (the same calls every tick): ``push_many`` of one frame
per leg, ``tick``, ``outputs`` of every leg (the lookup every tick), and ``gather`` through one
:class:`~bargein.mixer.OutputGather` (located once, as the WebRTC send plan reads its mixes). CPU time of this
thread (``time.thread_time``) per call, best of 3 runs. A media worker runs the same code once per 20 ms
tick, between which its CPU goes idle: compare these with the worker's own ``tick_ms_p50`` in ``/healthz``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import structlog
from bargein.mixer import LegRouting, MixerEngine, Role

from ._report import print_table, write_json


def per_call_us(fn: Callable[[], object], n: int) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.thread_time()
        for _ in range(n):
            fn()
        best = min(best, time.thread_time() - t0)
    return round(best / n * 1e6, 1)


def measure(calls: int, n: int) -> dict[str, float | int]:
    engine = MixerEngine(rate=48000)
    legs = [engine.add_leg(f"call{c}", LegRouting(role)) for c in range(calls) for role in (Role.CUSTOMER, Role.AGENT)]
    frames = np.zeros((len(legs), engine.n_samples), np.int16)
    engine.tick()
    gather = engine.output_gather(legs)
    return {"calls": calls, "legs": len(legs),
            "push_many_us": per_call_us(lambda: engine.push_many(legs, frames), n) if legs else 0.0,
            "tick_us": per_call_us(engine.tick, n),
            "outputs_us": per_call_us(lambda: engine.outputs(legs), n),
            "gather_us": per_call_us(lambda: engine.gather(gather), n)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", default="0,1,4,8,32", help="two-leg calls, comma separated")
    ap.add_argument("--ticks", type=int, default=20000, help="calls of each method per run")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    rows = [measure(int(c), args.ticks) for c in args.calls.split(",")]
    print_table("Mixer API, CPU µs per call (hot, best of 3)", rows,
                ["calls", "legs", "push_many_us", "tick_us", "outputs_us", "gather_us"])
    write_json(args.json, rows)


if __name__ == "__main__":
    main()
