"""What the recording tap costs the batched tick: the same calls with and without every call recorded.

    python -m benchmarks.recording_tap --calls 100,1000 --rate 48000 [--legs 3] [--rounds 20] [--json PATH]

Ticks with and without recording alternate in rounds of 10 on one engine, so both see the same machine
load. Only the tick is timed (the tap's two extra mixes per recorded call and handing out the batch);
encoding and writing happen on the writer thread, not here.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from bargein.mixer import LegRouting, MixerEngine, Role, SupervisorMode
from rich.console import Console
from rich.table import Table

from bargein.logs import configure_logging


def measure(calls: int, legs: int, rate: int, rounds: int) -> list[dict]:
    engine = MixerEngine(rate=rate)
    routing = [LegRouting(Role.CUSTOMER), LegRouting(Role.AGENT)] + [LegRouting(Role.PARTY)] * (legs - 3) + \
        [LegRouting(Role.SUPERVISOR, SupervisorMode.MONITOR)]
    ids = [engine.add_leg(c, r) for c in range(calls) for r in routing[:legs]]
    frames = np.random.default_rng(7).integers(-8000, 8000, (len(ids), engine.n_samples)).astype(np.int16)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for recorded in (False, True):
            for c in range(calls):
                engine.set_recording(c, c if recorded else None)
            for _ in range(10):
                engine.push_many(ids, frames)
                t0 = time.perf_counter()
                engine.tick()
                times[recorded].append((time.perf_counter() - t0) * 1000)
    return [{"calls": calls, "legs_per_call": legs, "rate": rate, "kernel": engine.kernel, "recorded": rec,
             "ticks": len(ms), "tick_ms_min": round(min(ms), 4), "tick_ms_p50": round(float(np.percentile(ms, 50)), 4),
             "tick_ms_p99": round(float(np.percentile(ms, 99)), 4)} for rec, ms in times.items()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", default="100,1000", help="comma-separated call counts")
    ap.add_argument("--legs", type=int, default=3)
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--rounds", type=int, default=20, help="rounds of 10 ticks each way")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    configure_logging("WARNING")
    rows = [row for n in map(int, args.calls.split(",")) for row in measure(n, args.legs, args.rate, args.rounds)]
    table = Table("calls", "recorded", "kernel", "min ms", "p50 ms", "p99 ms")
    for r in rows:
        table.add_row(f"{r['calls']:,}", "all" if r["recorded"] else "none", r["kernel"], f"{r['tick_ms_min']:.3f}",
                      f"{r['tick_ms_p50']:.3f}", f"{r['tick_ms_p99']:.3f}")
    Console().print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
