"""Mixing latency for many concurrent calls: batched engine vs a per-call baseline vs a plain copy.

    python -m benchmarks.mixing_latency --calls 100,1000,10000 --rate 48000 --json results/mixing.json \
        [--legs 3] [--ticks N] [--plot results/mixing.png] [--realtime SECONDS] [--threads 2]

All are measured in one run on the same machine, so the ratios hold even when absolute
figures move with the machine's load. ``batched`` is the tick alone (the mix of every call, input
queued just before it); ``batched+input`` is the tick given one frame per leg (``tick(legs, frames)``:
push and tick together, the input read where it lies), what a real-time tick costs;
``batched+push_many`` is queueing the frames with ``push_many`` (a copy into the engine) and then the
tick. ``copy`` copies the same input bytes to an output array of the same size: the memory floor for
any mixer. ``--realtime`` runs the real-time clock with input in every tick, split over ``--threads``
threads, in the clock's own thread off the event loop, under SCHED_FIFO (``--rt-priority``; 0 for ordinary
threads); ``--realtime-input push_many`` queues the input with push_many. Each missed tick is listed with its
parts (late wake-up, waiting for the loop, compute per mix thread) and the likeliest cause.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np
from bargein.mixer import (
    LegRouting,
    MixerEngine,
    RealtimeClock,
    RealtimePolicy,
    Role,
    ShareTiming,
    SupervisorMode,
    TickStats,
    samples_per_frame,
)
from bargein.mixer.reference import PerCallMixer
from rich.console import Console
from rich.table import Table

from bargein.logs import configure_logging

console = Console()
PER_CALL_MAX = 1000  # above this the per-call baseline takes too long; never skipped at 1000


def call_routing(legs: int) -> list[LegRouting]:
    """customer, agent, then other parties, and a monitoring supervisor as the last leg when legs >= 3."""
    if legs < 2:
        raise SystemExit("--legs must be at least 2")
    parties = [LegRouting(Role.CUSTOMER), LegRouting(Role.AGENT)]
    if legs == 2:
        return parties
    return parties + [LegRouting(Role.PARTY)] * (legs - 3) + [LegRouting(Role.SUPERVISOR, SupervisorMode.MONITOR)]


def synthetic_input(calls: int, legs: int, n: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-8000, 8000, size=(calls, legs, n), dtype=np.int16)


def stats(name: str, calls: int, legs: int, rate: int, times_s: list[float], cpu_s: list[float] | None = None
          ) -> dict:
    """One JSON row. ``cpu_s`` (this thread's CPU time per tick) leaves out time the thread was not running:
    on a shared machine it is the steadier figure for single-threaded work."""
    ms = np.asarray(times_s) * 1000
    extra = {"cpu_ms_p50": round(float(np.median(cpu_s)) * 1000, 4)} if cpu_s else {}
    return {
        "engine": name,
        "calls": calls,
        "legs_per_call": legs,
        "rate": rate,
        "samples_per_frame": samples_per_frame(rate),
        "ticks": len(ms),
        "tick_ms_p50": round(float(np.percentile(ms, 50)), 4),
        "tick_ms_p99": round(float(np.percentile(ms, 99)), 4),
        "tick_ms_max": round(float(ms.max()), 4),
        **extra,
    }


def bench_batched(calls: int, legs: int, rate: int, ticks: int, warmup: int, kernel: str,
                  threads: int = 1) -> tuple[dict, dict, dict, dict, float]:
    """Rows for the tick alone, the tick given its input, push_many + tick and the copy, and the p50 of
    push_many alone (ms).

    The copy is timed in the same loop, just before the others, so that on a shared machine its ratio to
    the mix compares the same moments."""
    n = samples_per_frame(rate)
    engine = MixerEngine(rate=rate, kernel=kernel, threads=threads)
    routing = call_routing(legs)
    leg_ids = [engine.add_leg(c, r) for c in range(calls) for r in routing]
    frames = synthetic_input(calls, legs, n).reshape(calls * legs, n)
    leg_ids = np.asarray(leg_ids, dtype=np.int64)
    dst = np.empty_like(frames)
    times, push_times, pushed, fused, copies = [], [], [], [], []
    cpu: dict[str, list[float]] = {"tick": [], "pushed": [], "fused": [], "copy": []}
    clock, cpu_clock = time.perf_counter, time.thread_time
    for t in range(warmup + ticks):
        c0, u0 = clock(), cpu_clock()
        np.copyto(dst, frames)
        t0, v0 = clock(), cpu_clock()
        engine.push_many(leg_ids, frames)
        t1, v1 = clock(), cpu_clock()
        engine.tick()
        t2, v2 = clock(), cpu_clock()
        engine.tick(leg_ids, frames)
        t3, v3 = clock(), cpu_clock()
        if t >= warmup:
            times.append(t2 - t1)
            push_times.append(t1 - t0)
            pushed.append(t2 - t0)
            fused.append(t3 - t2)
            copies.append(t0 - c0)
            cpu["tick"].append(v2 - v1)
            cpu["pushed"].append(v2 - v0)
            cpu["fused"].append(v3 - v2)
            cpu["copy"].append(v0 - u0)
    if threads > 1:  # the other threads' CPU time is not in this thread's clock
        cpu = {k: [] for k in cpu}
    rows = (stats("batched", calls, legs, rate, times, cpu["tick"]),
            stats("batched+input", calls, legs, rate, fused, cpu["fused"]),
            stats("batched+push_many", calls, legs, rate, pushed, cpu["pushed"]))
    for row in rows:
        row["kernel"] = engine.kernel
        row["threads"] = threads
    copy = stats("copy", calls, legs, rate, copies, cpu["copy"])
    return rows[0], rows[1], rows[2], copy, float(np.median(push_times) * 1000)


def bench_per_call(calls: int, legs: int, rate: int, ticks: int, warmup: int) -> dict:
    n = samples_per_frame(rate)
    mixer = PerCallMixer()
    routing = call_routing(legs)
    for c in range(calls):
        mixer.set_call(c, routing)
    data = synthetic_input(calls, legs, n)
    inputs = {c: data[c] for c in range(calls)}
    times, cpu = [], []
    for t in range(warmup + ticks):
        t0, u0 = time.perf_counter(), time.thread_time()
        mixer.tick(inputs)
        if t >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - u0)
    return stats("per_call", calls, legs, rate, times, cpu)


async def realtime_run(calls: int, legs: int, rate: int, seconds: float, kernel: str, threads: int = 1,
                       input_path: str = "tick", policy: RealtimePolicy | None = None) -> dict:
    """Run the real-time clock with ``calls`` calls fed by synthetic sources; ingest is inside the tick, which
    runs in the clock's own thread (split over ``threads``) while the event loop stays free. ``input_path``
    "tick" hands each tick its input (``tick(legs, frames)``), "push_many" queues it first. ``policy`` is the
    real-time scheduling of the mix threads (the product's default when None)."""
    if policy is None:
        policy = RealtimePolicy(priority=DEFAULT_RT_PRIORITY)
    n = samples_per_frame(rate)
    engine = MixerEngine(rate=rate, kernel=kernel, threads=threads, realtime=policy)
    engine.share_timing = True  # each thread's share of every tick, for the misses' causes
    routing = call_routing(legs)
    leg_ids = np.asarray([engine.add_leg(c, r) for c in range(calls) for r in routing], dtype=np.int64)
    frames = synthetic_input(calls, legs, n).reshape(calls * legs, n)
    splits: dict[int, tuple[ShareTiming, ...]] = {}  # tick index -> the engine's per-thread timings of that tick
    # tick index -> CPU steal per CPU from the end of the previous tick to the end of this one, its wake-up
    # included (ms, in the kernel's 10 ms steps)
    stolen: dict[int, list[float]] = {}
    last_steal = [steal_per_cpu()]

    def on_tick() -> None:
        if input_path == "push_many":
            engine.push_many(leg_ids, frames)
            engine.tick()
        else:
            engine.tick(leg_ids, frames)
        splits[clock.tick_index] = engine.last_split
        now = steal_per_cpu()
        stolen[clock.tick_index] = [round(b - a, 1) for a, b in zip(last_steal[0], now, strict=True)]
        last_steal[0] = now

    engine.start_workers()
    clock = RealtimeClock(on_tick, keep_stats=int(seconds * 50) + 10, offload=True, realtime=policy)
    on_tick()  # one tick before the clock starts: first-touch page faults belong to set-up, not to a deadline
    # the set-up's objects (imports, the engine) out of the collector's reach: a full collection scanning them
    # holds the GIL for milliseconds, and neither the loop nor the tick's Python part can run meanwhile
    gc.collect()
    gc.freeze()
    steal0, huge = cpu_steal_s(), anon_huge_kb()
    collections = GcWatch()
    gc.callbacks.append(collections)
    try:
        await clock.run(duration_s=seconds)
    finally:
        gc.callbacks.remove(collections)
        gc.unfreeze()
    steal = cpu_steal_s() - steal0
    s = clock.stats
    recent = list(s.recent)
    compute = np.array([t.compute_ms for t in recent])
    late = np.array([t.lateness_ms for t in recent])
    return {
        "engine": "batched_realtime",
        "calls": calls,
        "legs_per_call": legs,
        "rate": rate,
        "seconds": seconds,
        "threads": threads,
        "input": True,
        "input_path": input_path,
        "ticks": s.ticks,
        "skipped_ticks": clock.skipped,
        "deadline_misses": s.deadline_misses,
        "lateness_ms_p99": round(s.percentile("lateness_ms", 99), 4),
        "lateness_ms_max": round(s.max_lateness_ms, 4),
        "compute_ms_p50": round(s.percentile("compute_ms", 50), 4),
        "compute_ms_p99": round(s.percentile("compute_ms", 99), 4),
        "compute_ms_max": round(s.max_compute_ms, 4),
        # how many ticks fell in each range (ms): where late or long ticks come from
        "compute_ms_hist": histogram(compute),
        "lateness_ms_hist": histogram(late),
        "frames_missing": engine.counters.frames_missing,
        "frames_dropped": engine.counters.frames_dropped,
        # how the threads were scheduled, and what the machine did meanwhile
        "rt_priority": policy.priority,
        "rt_clock_thread": clock.realtime_granted,
        "rt_mix_workers": engine.realtime_workers,
        "wake_ms_p99": round(float(np.percentile([t.wake_ms for t in recent], 99)), 4) if recent else 0.0,
        "preempted_ticks": sum(1 for t in recent if t.preempted),
        "page_faults": sum(t.faults for t in recent),
        "cpu_steal_ms": round(steal * 1000, 1),
        "anon_huge_kb": huge,
        **collections.summary(),
        "misses": [miss_cause(t, splits.get(t.index, ()), collections.during(clock, t), stolen.get(t.index, []))
                   for t in recent if t.missed][:MAX_MISSES_LISTED],
        # the longest ticks, missed or not: what the spikes that come closest to the deadline are made of
        "slowest_ticks": [miss_cause(t, splits.get(t.index, ()), collections.during(clock, t), stolen.get(t.index, []))
                          for t in sorted(recent, key=lambda t: t.lateness_ms + t.compute_ms)[-5:][::-1]],
    }


class GcWatch:
    """Every garbage collection during the run: when, which generation, in which thread. A collection holds the
    GIL throughout, so it stalls every thread's Python, the tick's included."""

    def __init__(self) -> None:
        self.events: list[tuple[float, float, int, str]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.monotonic()
        else:
            self.events.append((self._start, time.monotonic(), info["generation"], threading.current_thread().name))

    def summary(self) -> dict[str, object]:
        ms = [(b - a) * 1000 for a, b, _, _ in self.events]
        return {"gc_collections": {str(g): sum(1 for e in self.events if e[2] == g) for g in (0, 1, 2)},
                "gc_ms_max": round(max(ms, default=0.0), 3), "gc_ms_total": round(sum(ms), 1)}

    def during(self, clock: RealtimeClock, t: TickStats) -> list[dict[str, object]]:
        """Collections that overlapped tick ``t`` (from its due time to the end of its compute)."""
        due = (clock.start_time or 0.0) + t.index * clock.period_s
        end = due + (t.lateness_ms + t.compute_ms) / 1000
        return [{"generation": g, "ms": round((b - a) * 1000, 3), "thread": name}
                for a, b, g, name in self.events if a < end and b > due]


DEFAULT_RT_PRIORITY = 40  # as the server's default mixer_rt_priority
MAX_MISSES_LISTED = 50


def miss_cause(t: TickStats, split: tuple[ShareTiming, ...], collections: list[dict[str, object]],
               steal_ms: list[float]) -> dict:
    """One (missed) tick, taken apart: a late start (``wake_ms``: the timer or the scheduler; ``wait_ms``: the
    event loop) or a long compute, and per mix thread its start after the split, wall and CPU time, involuntary
    switches and page faults. ``cause`` names the largest part."""
    late_wake, late_loop = t.wake_ms, t.wait_ms
    shares = [{"start_ms": round(x.start_ms, 3), "wall_ms": round(x.wall_ms, 3), "cpu_ms": round(x.cpu_ms, 3),
               "preempted": x.preempted, "faults": x.faults} for x in split]
    slowest = max(split, key=lambda x: x.start_ms + x.wall_ms, default=None)
    gc_ms = sum(float(c["ms"]) for c in collections)  # type: ignore[arg-type]
    if gc_ms > 0.25 * (t.lateness_ms + t.compute_ms):
        cause = "garbage collection"
    elif max(steal_ms, default=0.0) >= 0.25 * (t.lateness_ms + t.compute_ms):
        cause = "CPU steal (the hypervisor ran something else on a CPU of ours)"
    elif late_wake + late_loop > t.compute_ms:
        cause = "late wake-up" if late_wake >= late_loop else "waited for the event loop"
    elif slowest is not None and slowest.wall_ms > 1.5 * slowest.cpu_ms and (slowest.preempted or t.preempted):
        cause = "a mix thread was preempted"
    elif slowest is not None and slowest.start_ms > 0.25 * slowest.wall_ms:
        cause = "a mix thread started late"
    elif t.faults or any(x.faults for x in split):
        cause = "page faults"
    else:
        cause = "compute (CPU time itself was long)"
    return {"index": t.index, "lateness_ms": round(t.lateness_ms, 3), "wake_ms": round(late_wake, 3),
            "wait_ms": round(late_loop, 3), "compute_ms": round(t.compute_ms, 3), "cpu_ms": round(t.cpu_ms, 3),
            "preempted": t.preempted, "faults": t.faults, "threads": shares, "gc": collections,
            "steal_ms_per_cpu": steal_ms, "cause": cause}


def cpu_steal_s() -> float:
    """Time the hypervisor ran something else while this VM's CPUs wanted to run (all CPUs, seconds)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def steal_per_cpu() -> list[float]:
    """Each CPU's steal so far (ms; the kernel counts it in 10 ms steps)."""
    out = []
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3].isdigit():
                    out.append(int(line.split()[8]) * 1000 / os.sysconf("SC_CLK_TCK"))
                elif out:
                    break
    except (OSError, IndexError, ValueError):
        pass
    return out


def anon_huge_kb() -> int:
    """Anonymous memory of this process in transparent huge pages (numpy asks for them on large arrays)."""
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                if line.startswith("AnonHugePages:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


HIST_EDGES_MS = (0, 1, 2, 5, 10, 15, 20, 30, 50)


def histogram(ms: np.ndarray) -> dict[str, int]:
    """Counts per range of ``HIST_EDGES_MS`` (the last range open-ended), empty ranges left out."""
    edges = [*HIST_EDGES_MS, float("inf")]
    counts, _ = np.histogram(ms, bins=edges)
    return {(f"{a}-{b}" if b != float("inf") else f">={a}"): int(c)
            for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True) if c}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    threaded = sorted({r["engine"] for r in rows if r["engine"].startswith("batched_")})
    for engine, style in (("per_call", "s--"), ("batched", "o-"), ("batched+input", "v-"),
                          ("batched+push_many", "x-"),
                          *[(t, "d-.") for t in threaded], ("copy", "^:")):
        pts = sorted((r["calls"], r["tick_ms_p50"], r["tick_ms_p99"]) for r in rows if r["engine"] == engine)
        if pts:
            x, p50, p99 = zip(*pts, strict=True)
            ax.plot(x, p50, style, label=f"{engine} p50")
            ax.fill_between(x, p50, p99, alpha=0.15)
    ax.axhline(20, color="red", lw=0.8, label="20 ms frame")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent calls")
    ax.set_ylabel("tick time (ms)")
    r0 = rows[0]
    ax.set_title(f"bargein mixing latency, {r0['legs_per_call']} legs/call at {r0['rate']} Hz")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def print_ticks(title: str, misses: list[dict]) -> None:
    if not misses:
        return
    table = Table(title=title)
    for col in ("tick", "late", "wake", "loop", "compute", "cpu", "threads: start/wall/cpu", "gc", "steal/cpu",
                "cause"):
        table.add_column(col, justify="right")
    for m in misses:
        shares = "  ".join(f"{x['start_ms']:.1f}/{x['wall_ms']:.1f}/{x['cpu_ms']:.1f}" for x in m["threads"])
        table.add_row(str(m["index"]), f"{m['lateness_ms']:.1f}", f"{m['wake_ms']:.1f}", f"{m['wait_ms']:.1f}",
                      f"{m['compute_ms']:.1f}", f"{m['cpu_ms']:.1f}", shares,
                      " ".join(f"g{c['generation']} {c['ms']:.1f} {c['thread']}" for c in m["gc"]),
                      "/".join(f"{x:.0f}" for x in m["steal_ms_per_cpu"]), m["cause"])
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.mixing_latency", description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", default="100,1000,10000", help="comma-separated call counts")
    ap.add_argument("--rate", type=int, default=48000, choices=[8000, 16000, 48000])
    ap.add_argument("--legs", type=int, default=3, help="legs per call (default 3)")
    ap.add_argument("--ticks", type=int, default=200, help="timed ticks per engine and call count")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--kernel", default="auto", choices=["auto", "c", "numpy"], help="batched engine's mix kernel")
    ap.add_argument("--threads", type=int, default=1,
                    help="also measure the batched engine split over this many threads (C kernel only); "
                         "--realtime uses it too")
    ap.add_argument("--per-call-max", type=int, default=PER_CALL_MAX,
                    help="skip the per-call baseline above this many calls (never below 1000)")
    ap.add_argument("--json", type=Path, help="write result rows here")
    ap.add_argument("--plot", type=Path, help="write a PNG plot here")
    ap.add_argument("--realtime", type=float, metavar="SECONDS",
                    help="also run the real-time clock for SECONDS (input queueing included in each tick)")
    ap.add_argument("--realtime-calls", type=int, metavar="N", help="calls for --realtime (default: the largest count)")
    ap.add_argument("--realtime-input", choices=["tick", "push_many"], default="tick",
                    help="--realtime: hand each tick its input (tick(legs, frames), default) or queue it with "
                         "push_many first")
    ap.add_argument("--rt-priority", type=int, default=DEFAULT_RT_PRIORITY, metavar="P",
                    help=f"--realtime: SCHED_FIFO priority of the mix threads (default {DEFAULT_RT_PRIORITY}, as the "
                         "server; 0: ordinary threads)")
    ap.add_argument("--rt-cpus", default="", metavar="LIST",
                    help="--realtime: pin mix thread i to the i-th of these comma-separated CPUs (default: no pinning)")
    args = ap.parse_args(argv)
    configure_logging("WARNING")
    counts = [int(c) for c in args.calls.split(",") if c.strip()]
    per_call_max = max(args.per_call_max, 1000)
    rows: list[dict] = []
    notes: dict[str, float] = {}
    for calls in counts:
        ticks = args.ticks
        console.log(f"{calls} calls x {args.legs} legs at {args.rate} Hz, {ticks} ticks")
        batched, with_input, pushed, copy, push_ms = bench_batched(calls, args.legs, args.rate, ticks, args.warmup,
                                                                   args.kernel)
        notes[f"push_ms_p50@{calls}"] = round(push_ms, 4)
        rows += [batched, with_input, pushed]
        if args.threads > 1:
            threaded, *_ = bench_batched(calls, args.legs, args.rate, ticks, args.warmup, "c", args.threads)
            threaded["engine"] = f"batched_{args.threads}threads"
            rows.append(threaded)
        if calls <= per_call_max:
            rows.append(bench_per_call(calls, args.legs, args.rate, max(10, ticks // 4 if calls > 100 else ticks),
                                       args.warmup))
        rows.append(copy)

    table = Table(title=f"Mixing latency ({args.legs} legs/call, {args.rate} Hz, 20 ms frames)")
    for col in ("engine", "calls", "p50 ms", "p99 ms", "max ms", "vs copy (p50)", "per_call / batched",
                "cpu p50 ms", "cpu vs copy", "cpu per_call / batched"):
        table.add_column(col, justify="right")
    by = {(r["engine"], r["calls"]): r for r in rows}
    for r in rows:
        copy, batched = by[("copy", r["calls"])], by[("batched", r["calls"])]
        per_call = r["engine"] == "per_call"
        speedup = f"{r['tick_ms_p50'] / batched['tick_ms_p50']:.1f}x" if per_call else ""
        cpu = r.get("cpu_ms_p50")
        cpu_cols = ("", "", "") if cpu is None else (
            f"{cpu:.3f}", f"{cpu / copy['cpu_ms_p50']:.2f}x", f"{cpu / batched['cpu_ms_p50']:.1f}x" if per_call else "")
        table.add_row(r["engine"], str(r["calls"]), f"{r['tick_ms_p50']:.3f}", f"{r['tick_ms_p99']:.3f}",
                      f"{r['tick_ms_max']:.3f}", f"{r['tick_ms_p50'] / copy['tick_ms_p50']:.2f}x", speedup, *cpu_cols)
    console.print(table)
    console.print(f"batched kernel: {rows[0].get('kernel')}; push_many alone (in batched+push_many): "
                  + ", ".join(f"{k}={v} ms" for k, v in notes.items()))

    realtime = None
    if args.realtime:
        calls = args.realtime_calls or max(counts)
        console.log(f"real-time clock: {calls} calls for {args.realtime} s, {args.threads} thread(s) in the clock's "
                    f"thread, SCHED_FIFO priority {args.rt_priority or 'off'}")
        policy = RealtimePolicy(priority=args.rt_priority,
                                cpus=tuple(int(c) for c in args.rt_cpus.split(",") if c.strip()))
        realtime = asyncio.run(realtime_run(calls, args.legs, args.rate, args.realtime, args.kernel, args.threads,
                                            args.realtime_input, policy))
        console.print({k: v for k, v in realtime.items() if k not in ("misses", "slowest_ticks")})
        print_ticks("Missed ticks (ms)", realtime["misses"])
        print_ticks("Slowest ticks (ms)", realtime["slowest_ticks"])

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
                "numpy": np.__version__}
        out = [{**r, **meta} for r in rows] + ([{**realtime, **meta}] if realtime else [])
        args.json.write_text(json.dumps(out, indent=2))
        console.log(f"wrote {args.json}")
    if args.plot:
        plot(rows, args.plot)
        console.log(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
