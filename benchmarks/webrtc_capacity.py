"""Capacity of real WebRTC legs through ``bargein serve`` with 1, 2, ... media workers.

    python -m benchmarks.webrtc_capacity --json results/webrtc_capacity.json \
        [--workers 1,2] [--legs 8,16,24,32] [--measure 10] [--client-procs 2]

For each worker count a fresh server runs as its own process (``--media-workers W --load-users N``).
aiortc client legs run in separate client processes (their CPU is not counted): every call is a
customer leg and an agent leg, each sending its own tone. One of the calls is a probe: its customer
sends 200 ms tone bursts once a second and its agent timestamps their onsets in the audio it
receives, in the same process and on the same clock (latency = onset handed to the sender ->
onset decoded by the receiver, measured as in :mod:`benchmarks.webrtc_latency`). With ``--callers direct``
(the default) the load calls' audio goes through bargein's direct RTP path once they are set up
(:mod:`benchmarks._direct_caller`: pre-encoded tones, received packets counted, not decoded), so the
callers cost a fraction of aiortc's media path and do not starve the server on a small machine.

The legs are stepped up; at each step, after a settling pause, the benchmark measures for
``--measure`` seconds: the server's CPU (its process and every media worker, user + system, as %
of one core), deadline misses, frames concealed (an input frame missing at its tick, as % of leg
frames mixed) and the probe's latency p50; besides those, the caller processes' CPU over the same window
(``callers_cpu_pct``, % of one core: they share the cores) and the CPU time the hypervisor took from the
machine (``steal_pct``). ``max_clean_legs`` is the most legs with 0 deadline misses and < 1 % concealed;
the summary row also fits a line through the server's CPU of the steps under 1 % concealed:
``fixed_cpu_pct`` (what does not grow with legs) and ``cpu_pct_per_added_leg`` (what each leg adds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from ._report import console, print_table, write_json
from ._serve import bargein_serve, get_json

PROBE_HZ, BURST_FRAMES, BURST_EVERY = 1000.0, 10, 50  # 200 ms burst once a second
PROBE_AMPLITUDE = 0.25


# ---------------------------------------------------------------------------------------- client side
def _client_main(base: str, conn: Connection, first: int, probe: bool, cpus: set[int] | None = None,
                 direct: bool = False) -> None:
    """A client process: sets up calls on command; ``probe`` processes measure latency instead."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    from bargein.logs import configure_logging

    configure_logging("ERROR", json=True)
    asyncio.run(_client(base, conn, first, probe, direct))


async def _client(base: str, conn: Connection, first: int, probe: bool, direct: bool = False) -> None:
    import aiohttp

    from ._direct_caller import DirectCallers

    loop = asyncio.get_running_loop()
    held: list[Any] = []  # everything of the live calls, kept referenced
    callers = DirectCallers() if direct else None
    going: list[asyncio.Task[None]] = []  # agent legs going direct once their call is up
    index = first
    async with aiohttp.ClientSession() as session:
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            try:
                if cmd[0] == "calls":
                    for _ in range(cmd[1]):
                        parts = await _call(session, base, index, callers=callers)
                        held.append(parts)
                        index += 1
                        if callers is not None:
                            going.append(loop.create_task(_agent_direct(callers, parts)))
                    if going:  # agents answer calls of any process: those answered by now have gone direct
                        await asyncio.wait(going, timeout=10)
                        for task in [t for t in going if t.done()]:
                            going.remove(task)
                            task.result()
                    conn.send(("ok", len(held)))
                elif cmd[0] == "probe_call":
                    held.append(await _call(session, base, index, probe=True))
                    conn.send(("ok", 1))
                elif cmd[0] == "latency":
                    conn.send(("ok", await _measure(held[0], cmd[1])))
                elif cmd[0] == "stop":
                    break
            except Exception as exc:  # noqa: BLE001 - reported to the orchestrator, which decides
                conn.send(("error", repr(exc)))
        for task in going:
            task.cancel()
        if callers is not None:
            await callers.close()
        for parts in held:
            for leg in parts["legs"]:
                await leg.close()
            for ws in parts["ws"]:
                await ws.close()


async def _call(session: Any, base: str, i: int, probe: bool = False, callers: Any = None) -> dict[str, Any]:
    from bargein.signaling.client import Refused, sign_in
    from bargein.signaling.webrtc_client import ClientLeg, ToneTrack

    agent = await sign_in(base + "/ws", f"loadagent{i}", session=session, timeout=120)
    customer = await sign_in(base + "/ws", f"loadcustomer{i}", session=session, timeout=120)
    if probe:  # the customer sends bursts; the agent notes when their onsets arrive
        bursts = ToneTrack(PROBE_HZ, PROBE_AMPLITUDE, burst_frames=BURST_FRAMES, period_frames=BURST_EVERY)
        customer_leg = ClientLeg(PROBE_HZ, keep_frames=2, track=bursts)
        agent_leg = ClientLeg(750.0, keep_frames=2, onset_threshold=PROBE_AMPLITUDE * 32767 / 3)
    elif callers is not None:  # their audio goes through the direct path (benchmarks/_direct_caller.py)
        agent_leg, customer_leg = callers.leg(), callers.leg()
    else:
        agent_leg, customer_leg = ClientLeg(750.0, keep_frames=2), ClientLeg(500.0, keep_frames=2)
    await agent.request("PUBLISH", state="available")
    # this agent answers whichever call rings it: a customer of any client process may be routed here
    answering = asyncio.get_running_loop().create_task(agent.answer(media=agent_leg, timeout=24 * 3600))
    r = await customer.invite("queue:support", media=customer_leg, timeout=120)
    if r.get("status") != 200:
        raise Refused(r)
    if probe:  # the probe's own agent is the only one available when it calls
        await asyncio.wait_for(answering, 120)
    elif callers is not None:
        await callers.go_direct(customer_leg, 500.0)
    else:
        await customer_leg.fresh(5, timeout=120)  # the agent who answered (any process) sends audio
    return {"legs": [agent_leg, customer_leg], "ws": [agent, customer], "answering": answering,
            "sent": getattr(customer_leg.track, "onsets", []), "heard": agent_leg.detector}


async def _agent_direct(callers: Any, parts: dict[str, Any]) -> None:
    """The agent leg of a load call sends through the direct path once a call reached it."""
    await parts["answering"]
    await callers.go_direct(parts["legs"][0], 750.0)


async def _measure(parts: dict[str, Any], seconds: float) -> list[float]:
    """Latencies (ms) of the bursts sent in the next ``seconds``."""
    from .webrtc_latency import match

    sent, heard = parts["sent"], parts["heard"].onsets
    s0, h0 = len(sent), len(heard)
    await asyncio.sleep(seconds + 1.0)
    return [d * 1000 for _, d in match(sent[s0:], [t for t, _ in heard[h0:]])]


# ---------------------------------------------------------------------------------------- server side
def _reply(conn: Connection, timeout: float) -> tuple[str, Any]:
    """A client process's answer, or ("error", "timeout") when it takes longer than ``timeout``."""
    if not conn.poll(timeout):
        return ("error", f"no answer in {timeout:g} s")
    return conn.recv()


def _cpu_s(procs: list[psutil.Process]) -> float:
    """CPU seconds (user + system) of these processes; one that has gone counts nothing."""
    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _server_cpu_s(proc: psutil.Process, only: set[int] | None = None) -> float:
    """CPU seconds of the server and every process under it (``only``: just these pids)."""
    return _cpu_s([p for p in [proc, *proc.children(recursive=True)] if only is None or p.pid in only])


def _steal_s() -> float:
    """CPU seconds the hypervisor gave to others while this machine's CPUs wanted to run (all CPUs, from boot)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares ``y = a + b x`` through ``points``: (a, b), or None with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    b, a = np.polyfit([x for x, _ in points], [y for _, y in points], 1)
    return float(a), float(b)


def summary(workers: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary row of one worker count: ``max_clean_legs`` (the contract), and how the server's CPU splits
    into a part that does not grow with legs and a part per added leg (a line through the steps that were
    not overloaded, i.e. < 1 % concealed)."""
    clean = [r["legs"] for r in rows if r["deadline_misses"] == 0 and r["concealed_pct"] < 1.0]
    out: dict[str, Any] = {"workers": workers, "max_clean_legs": max(clean, default=0)}
    line = fit_line([(r["legs"], r["server_cpu_pct"]) for r in rows if r["concealed_pct"] < 1.0])
    if line is not None:
        out["fixed_cpu_pct"], out["cpu_pct_per_added_leg"] = round(line[0], 1), round(line[1], 2)
    return out


def _mixer_deltas(h0: dict[str, Any], h1: dict[str, Any]) -> tuple[int, int, float]:
    """Deadline misses, frames concealed and leg-frames mixed between two /healthz readings (all workers).
    Concealed: the legs' inbound buffers answered a pull with concealment (loss, late or a gap) when
    they report it, else an input frame missing at its tick."""
    before = {w["worker"]: w for w in h0["media_workers"]["workers"]}
    misses = missing = 0
    mixed = 0.0
    for w in h1["media_workers"]["workers"]:
        b = before.get(w["worker"], {"deadline_misses": 0, "frames_missing": 0, "ticks": 0, "legs": w["legs"],
                                     "inbound": {}})
        misses += w["deadline_misses"] - b["deadline_misses"]
        if "concealed" in w.get("inbound", {}):
            missing += w["inbound"]["concealed"] - b.get("inbound", {}).get("concealed", 0)
        else:
            missing += w["frames_missing"] - b["frames_missing"]
        mixed += (w["ticks"] - b["ticks"]) * (w["legs"] + b["legs"]) / 2
    return misses, missing, mixed


def _py_spy(pids: list[int], seconds: float, out: Path) -> list[subprocess.Popen[bytes]]:
    """Sample each media worker for ``seconds`` (collapsed stacks, idle frames left out)."""
    out.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).parent / "py-spy"
    return [subprocess.Popen([str(exe) if exe.exists() else "py-spy", "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "50",
                              "--format", "raw", "-o", str(out / f"{out.name}-{pid}.txt"),
                              *os.environ.get("PY_SPY_ARGS", "").split()],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in pids]


# leaf frames of threads that wait (an idle executor thread, the event loop's poll inside uvloop's C code)
IDLE = ("Condition.wait (threading.py", "_worker (concurrent/futures/thread.py", "Runner.run (asyncio/runners.py",
        "select (selectors.py", "run_forever (asyncio/base_events.py")


def top_self(path: Path, n: int = 15) -> list[tuple[str, float]]:
    """The functions where a collapsed-stack profile spends its samples (leaf frames), as % of the
    samples that were not waiting (:data:`IDLE`)."""
    counts: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, k = line.rpartition(" ")
        if not stack:
            continue
        leaf = stack.split(";")[-1]
        if leaf.startswith(IDLE):
            continue
        counts[leaf] = counts.get(leaf, 0) + int(k)
        total += int(k)
    return [(f, round(100 * c / max(1, total), 1)) for f, c in sorted(counts.items(), key=lambda kv: -kv[1])[:n]]


def _server_cpus(args: argparse.Namespace) -> set[int] | None:
    return None if args.pin_server is None else {int(c) for c in args.pin_server.split(",")}


def _client_cpus(args: argparse.Namespace) -> set[int] | None:
    """With ``--pin-server``, the callers run on every other core (their CPU stays off the server's)."""
    server = _server_cpus(args)
    if server is None:
        return None
    rest = set(os.sched_getaffinity(0)) - server
    return rest or None


def run_workers(workers: int, steps: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    users = max(steps) // 2 + 4
    with bargein_serve("--media-workers", str(workers), "--load-users", str(users * (args.client_procs + 1)),
                       log_level="INFO" if args.verbose else "WARNING", show_output=args.verbose, cpus=_server_cpus(args),
                       ready=lambda h: h["media_workers"]["alive"] == workers) as (base, server):
        rows = _steps(base, server, workers, users, steps, args)
    rows.append(summary(workers, rows))
    return rows


def _steps(base: str, server: subprocess.Popen[bytes], workers: int, users: int, steps: list[int],
           args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    clients: list[tuple[mp.Process, Connection]] = []
    try:
        proc = psutil.Process(server.pid)
        ctx = mp.get_context("spawn")
        for k in range(args.client_procs + 1):  # the first one carries the probe call
            ours, theirs = ctx.Pipe()
            p = ctx.Process(target=_client_main, args=(base, theirs, 1 + k * users, k == 0, _client_cpus(args),
                                                       args.callers == "direct" and k > 0), daemon=True)
            p.start()
            clients.append((p, ours))
        callers = [psutil.Process(p.pid) for p, _ in clients if p.pid is not None]
        probe = clients[0][1]
        probe.send(("probe_call",))
        if (r := _reply(probe, args.step_timeout))[0] != "ok":
            raise RuntimeError(f"probe call failed: {r}")
        legs = 2
        for target in steps:
            add = max(0, (target - legs) // 2)
            load = clients[1:]
            for j, (_, c) in enumerate(load):
                c.send(("calls", add // len(load) + (1 if j < add % len(load) else 0)))
            failed = [r for _, c in load if (r := _reply(c, args.step_timeout))[0] != "ok"]
            if failed:
                console.print(f"[red]workers={workers}: setting up {target} legs failed: {failed[0]}")
                break
            legs += add * 2
            time.sleep(args.settle)
            h0, cpu0, t0 = get_json(base + "/healthz"), _server_cpu_s(proc), time.monotonic()
            media = {w["pid"] for w in h0["media_workers"]["workers"]}
            media0 = _server_cpu_s(proc, media)
            callers0, steal0 = _cpu_s(callers), _steal_s()
            spies = []
            if args.py_spy and target == steps[-1]:
                spies = _py_spy([w["pid"] for w in h0["media_workers"]["workers"]], args.measure,
                                args.py_spy / f"workers{workers}-legs{target}")
            probe.send(("latency", args.measure))
            lat = _reply(probe, args.measure + args.step_timeout)
            h1, cpu1, t1 = get_json(base + "/healthz"), _server_cpu_s(proc), time.monotonic()
            media1 = _server_cpu_s(proc, media)
            callers1, steal1 = _cpu_s(callers), _steal_s()
            for spy in spies:
                spy.wait(60)
            misses, missing, mixed = _mixer_deltas(h0, h1)
            cpu_pct = 100 * (cpu1 - cpu0) / (t1 - t0)
            latencies = lat[1] if lat[0] == "ok" else []
            if h1["mixer"]["legs"] != target:
                console.print(f"[yellow]asked for {target} legs, the mixer holds {h1['mixer']['legs']}")
            row = {"workers": workers, "legs": h1["mixer"]["legs"], "server_cpu_pct": round(cpu_pct, 1),
                   "cpu_pct_per_leg": round(cpu_pct / max(1, h1["mixer"]["legs"]), 2),
                   "deadline_misses": misses,
                   "concealed_pct": round(100 * missing / max(1.0, mixed), 2),
                   "probe_latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None}
            row["media_worker_cpu_pct"] = round(100 * (media1 - media0) / (t1 - t0), 1)  # added: the workers' part
            row["callers"] = args.callers  # added: how the load calls' audio was sent and received
            # added: what the caller processes (probe included) took of the same cores, and what the hypervisor
            # took from all of them (isolated deadline misses on a quiet VM come with the steal)
            row["callers_cpu_pct"] = round(100 * (callers1 - callers0) / (t1 - t0), 1)
            row["steal_pct"] = round(100 * (steal1 - steal0) / (t1 - t0), 1)
            if args.pin_server is not None:  # an added field: where the server ran
                row["server_cpus"] = args.pin_server
            rows.append(row)
            console.print(row)
    finally:
        for _, c in clients:
            with contextlib.suppress(OSError, BrokenPipeError):
                c.send(("stop",))
        for p, _ in clients:
            p.join(20)
            if p.is_alive():
                p.kill()
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2", help="media worker counts, comma separated")
    ap.add_argument("--legs", default="8,16,24,32", help="leg counts to step through (the probe call included)")
    ap.add_argument("--measure", type=float, default=10.0, help="seconds measured per step")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after setting up a step's calls")
    ap.add_argument("--client-procs", type=int, default=2, help="processes carrying the load calls")
    ap.add_argument("--step-timeout", type=float, default=180.0, help="give up on a step whose calls take longer")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    ap.add_argument("--callers", choices=("direct", "aiortc"), default="direct",
                    help="load calls' audio once they are up: bargein's direct RTP path with pre-encoded tones "
                         "(cheap callers) or aiortc's own media path (as before 27 Nov); the probe call is aiortc")
    ap.add_argument("--verbose", action="store_true", help="show the server's logs")
    ap.add_argument("--pin-server", default=None, metavar="CPUS",
                    help="pin the server and its media workers to these cores (e.g. 0) and the callers to the others")
    ap.add_argument("--py-spy", type=Path, default=None, metavar="DIR",
                    help="profile the media workers with py-spy during the last step; top entries printed")
    args = ap.parse_args(argv)
    steps = sorted(int(x) for x in args.legs.split(","))
    rows: list[dict[str, Any]] = []
    for w in (int(x) for x in args.workers.split(",")):
        rows += run_workers(w, steps, args)
    print_table("WebRTC capacity through bargein serve", [r for r in rows if "legs" in r], [
        "workers", "legs", ("server cpu %", "server_cpu_pct"), ("% per leg", "cpu_pct_per_leg"),
        ("misses", "deadline_misses"), ("concealed %", "concealed_pct"), ("probe p50 ms", "probe_latency_ms_p50"),
        ("callers cpu %", "callers_cpu_pct"), ("steal %", "steal_pct")])
    print_table("Per worker count", [r for r in rows if "legs" not in r], [
        "workers", "max_clean_legs", "fixed_cpu_pct", "cpu_pct_per_added_leg"])
    load = os.getloadavg()
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, load average {load[0]:.1f} "
                  f"{load[1]:.1f} {load[2]:.1f} at the end (other work on the machine shares these cores)")
    if args.py_spy:
        for path in sorted(args.py_spy.glob("*/*.txt")):
            console.print(f"[bold]{path.name}[/] top leaf functions (% of samples):")
            for name, pct in top_self(path):
                console.print(f"  {pct:5.1f}  {name}")
    write_json(args.json, rows)


if __name__ == "__main__":
    main()
