"""Capacity of real WebRTC legs through ``bargein serve`` with 1, 2, ... media workers.

    python -m benchmarks.webrtc_capacity --json results/webrtc_capacity.json \
        [--workers 1,2] [--legs 8,16,24,32] [--measure 10] [--client-procs 2]

For each worker count a fresh server runs as its own process (``--media-workers W --load-users N``).
aiortc client legs run in separate client processes (their CPU is not counted): every call is a
customer leg and an agent leg, each sending its own tone. One of the calls is a probe: its customer
sends 200 ms tone bursts once a second and its agent timestamps their onsets in the audio it
receives, in the same process and on the same clock (latency = onset handed to the sender ->
onset decoded by the receiver, 20 ms resolution).

The legs are stepped up; at each step, after a settling pause, the benchmark measures for
``--measure`` seconds: the server's CPU (its process and every media worker, user + system, as %
of one core), deadline misses, frames concealed (an input frame missing at its tick, as % of leg
frames mixed) and the probe's latency p50. ``max_clean_legs`` is the most legs with 0 deadline
misses and < 1 % concealed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import multiprocessing as mp
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

console = Console()
PROBE_HZ, BURST_FRAMES, BURST_EVERY = 1000.0, 10, 50  # 200 ms burst once a second
RATE, SAMPLES = 48000, 960


# ---------------------------------------------------------------------------------------- client side
def _client_main(base: str, conn: Connection, first: int, probe: bool) -> None:
    """A client process: sets up calls on command; ``probe`` processes measure latency instead."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    from bargein.logs import configure_logging

    configure_logging("ERROR", json=True)
    asyncio.run(_client(base, conn, first, probe))


async def _client(base: str, conn: Connection, first: int, probe: bool) -> None:
    import aiohttp

    loop = asyncio.get_running_loop()
    held: list[Any] = []  # everything of the live calls, kept referenced
    index = first
    async with aiohttp.ClientSession() as session:
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            try:
                if cmd[0] == "calls":
                    for _ in range(cmd[1]):
                        held.append(await _call(session, base, index))
                        index += 1
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
        for parts in held:
            for leg in parts["legs"]:
                await leg.close()
            for ws in parts["ws"]:
                await ws.close()


class _ProbeTrack:
    """Silence with a tone burst every second; remembers when each burst's first frame was handed over."""

    def __new__(cls) -> Any:
        import av
        from aiortc import MediaStreamTrack
        from aiortc.mediastreams import MediaStreamError
        from bargein.mixer.tones import tone

        class Track(MediaStreamTrack):
            kind = "audio"

            def __init__(self) -> None:
                super().__init__()
                self.n, self.start, self.onsets = 0, None, []
                self.burst = tone(PROBE_HZ, RATE, SAMPLES * BURST_FRAMES, 0.25)
                self.silence = np.zeros(SAMPLES, np.int16)

            async def recv(self) -> Any:
                if self.readyState != "live":
                    raise MediaStreamError
                now = time.monotonic()
                self.start = self.start or now
                due = self.start + self.n * 0.02
                if due > now:
                    await asyncio.sleep(due - now)
                k = self.n % BURST_EVERY
                pcm = self.burst[k * SAMPLES:(k + 1) * SAMPLES] if k < BURST_FRAMES else self.silence
                if k == 0:
                    self.onsets.append(time.monotonic())
                frame = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES)
                frame.planes[0].update(pcm.tobytes())
                frame.sample_rate, frame.pts, frame.time_base = RATE, self.n * SAMPLES, fractions.Fraction(1, RATE)
                self.n += 1
                return frame

        return Track()


async def _call(session: Any, base: str, i: int, probe: bool = False) -> dict[str, Any]:
    from aiortc import RTCPeerConnection
    from bargein.signaling.client import Refused, sign_in
    from bargein.signaling.webrtc import no_ice_servers
    from bargein.signaling.webrtc_client import ClientLeg, ToneTrack

    agent = await sign_in(base + "/ws", f"loadagent{i}", session=session, timeout=120)
    customer = await sign_in(base + "/ws", f"loadcustomer{i}", session=session, timeout=120)
    arrivals: list[float] = []
    agent_leg: Any
    if probe:  # the customer sends bursts; the agent records when they arrive
        customer_leg: Any = _RawLeg(RTCPeerConnection(no_ice_servers()), _ProbeTrack())
        agent_pc = RTCPeerConnection(no_ice_servers())
        agent_leg = _RawLeg(agent_pc, ToneTrack(750.0))

        @agent_pc.on("track")
        def on_track(remote: Any) -> None:
            agent_leg.tasks.append(asyncio.get_running_loop().create_task(_onsets(remote, arrivals)))
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
    else:
        await customer_leg.fresh(5, timeout=120)  # the agent who answered (any process) sends audio
    return {"legs": [agent_leg, customer_leg], "ws": [agent, customer], "arrivals": arrivals,
            "answering": answering, "sent": customer_leg.track.onsets if probe else None}


class _RawLeg:
    def __init__(self, pc: Any, track: Any) -> None:
        self.pc, self.track = pc, track
        self.tasks: list[asyncio.Task[None]] = []
        pc.addTrack(track)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, sdp: str) -> None:
        from aiortc import RTCSessionDescription

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await self.pc.close()


async def _onsets(remote: Any, arrivals: list[float]) -> None:
    from aiortc.mediastreams import MediaStreamError

    quiet = 0
    threshold = 0.02 * 32767  # about -34 dBFS: far above Opus noise, far below the -12 dBFS burst
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while True:
            frame = await remote.recv()
            t = time.monotonic()
            pcm = frame.to_ndarray().astype(np.float32)
            if np.sqrt(np.mean(pcm * pcm)) > threshold:
                if quiet >= 10:
                    arrivals.append(t)
                quiet = 0
            else:
                quiet += 1


async def _measure(parts: dict[str, Any], seconds: float) -> list[float]:
    """Latencies (ms) of the bursts sent in the next ``seconds``: each sent onset to the first arrival after it."""
    sent, arrivals = parts["sent"], parts["arrivals"]
    s0, a0 = len(sent), len(arrivals)
    await asyncio.sleep(seconds + 1.0)
    out = []
    new_arrivals = arrivals[a0:]
    for t in sent[s0:]:
        after = [a for a in new_arrivals if t < a < t + BURST_EVERY * 0.02]
        if after:
            out.append((after[0] - t) * 1000)
    return out


# ---------------------------------------------------------------------------------------- server side
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def _server_cpu_s(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _mixer_deltas(h0: dict[str, Any], h1: dict[str, Any]) -> tuple[int, int, float]:
    """Deadline misses, frames missing and leg-frames mixed between two /healthz readings (all workers)."""
    before = {w["worker"]: w for w in h0["media_workers"]["workers"]}
    misses = missing = 0
    mixed = 0.0
    for w in h1["media_workers"]["workers"]:
        b = before.get(w["worker"], {"deadline_misses": 0, "frames_missing": 0, "ticks": 0, "legs": w["legs"]})
        misses += w["deadline_misses"] - b["deadline_misses"]
        missing += w["frames_missing"] - b["frames_missing"]
        mixed += (w["ticks"] - b["ticks"]) * (w["legs"] + b["legs"]) / 2
    return misses, missing, mixed


def _py_spy(pids: list[int], seconds: float, out: Path) -> list[subprocess.Popen[bytes]]:
    """Sample each media worker for ``seconds`` (collapsed stacks, idle frames left out)."""
    out.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).parent / "py-spy"
    return [subprocess.Popen([str(exe) if exe.exists() else "py-spy", "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "50",
                              "--format", "raw", "-o", str(out / f"{out.name}-{pid}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid in pids]


def top_self(path: Path, n: int = 15) -> list[tuple[str, float]]:
    """The functions where a collapsed-stack profile spends its samples (leaf frames), as % of samples."""
    counts: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, k = line.rpartition(" ")
        if not stack:
            continue
        leaf = stack.split(";")[-1]
        counts[leaf] = counts.get(leaf, 0) + int(k)
        total += int(k)
    return [(f, round(100 * c / max(1, total), 1)) for f, c in sorted(counts.items(), key=lambda kv: -kv[1])[:n]]


def run_workers(workers: int, steps: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    users = max(steps) // 2 + 4
    cmd = [sys.executable, "-m", "bargein.cli", "--log-level", "INFO" if args.verbose else "WARNING", "serve", "--port", str(port),
           "--media-workers", str(workers), "--load-users", str(users * (args.client_procs + 1))]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL if not args.verbose else None)
    rows: list[dict[str, Any]] = []
    clients: list[tuple[mp.Process, Connection]] = []
    try:
        for _ in range(600):
            with contextlib.suppress(OSError):
                if _get(base + "/healthz")["media_workers"]["alive"] == workers:
                    break
            time.sleep(0.2)
        proc = psutil.Process(server.pid)
        ctx = mp.get_context("spawn")
        for k in range(args.client_procs + 1):  # the first one carries the probe call
            ours, theirs = ctx.Pipe()
            p = ctx.Process(target=_client_main, args=(base, theirs, 1 + k * users, k == 0), daemon=True)
            p.start()
            clients.append((p, ours))
        probe = clients[0][1]
        probe.send(("probe_call",))
        if (r := probe.recv())[0] != "ok":
            raise RuntimeError(f"probe call failed: {r}")
        legs = 2
        for target in steps:
            add = max(0, (target - legs) // 2)
            load = clients[1:]
            for j, (_, c) in enumerate(load):
                c.send(("calls", add // len(load) + (1 if j < add % len(load) else 0)))
            failed = [r for _, c in load if (r := c.recv())[0] != "ok"]
            if failed:
                console.print(f"[red]workers={workers}: setting up {target} legs failed: {failed[0]}")
                break
            legs += add * 2
            time.sleep(args.settle)
            h0, cpu0, t0 = _get(base + "/healthz"), _server_cpu_s(proc), time.monotonic()
            spies = []
            if args.py_spy and target == steps[-1]:
                spies = _py_spy([w["pid"] for w in h0["media_workers"]["workers"]], args.measure,
                                args.py_spy / f"workers{workers}-legs{target}")
            probe.send(("latency", args.measure))
            lat = probe.recv()
            h1, cpu1, t1 = _get(base + "/healthz"), _server_cpu_s(proc), time.monotonic()
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
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
    clean = [r["legs"] for r in rows if r["deadline_misses"] == 0 and r["concealed_pct"] < 1.0]
    rows.append({"workers": workers, "max_clean_legs": max(clean, default=0)})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2", help="media worker counts, comma separated")
    ap.add_argument("--legs", default="8,16,24,32", help="leg counts to step through (the probe call included)")
    ap.add_argument("--measure", type=float, default=10.0, help="seconds measured per step")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after setting up a step's calls")
    ap.add_argument("--client-procs", type=int, default=2, help="processes carrying the load calls")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    ap.add_argument("--verbose", action="store_true", help="show the server's logs")
    ap.add_argument("--py-spy", type=Path, default=None, metavar="DIR",
                    help="profile the media workers with py-spy during the last step; top entries printed")
    args = ap.parse_args(argv)
    steps = sorted(int(x) for x in args.legs.split(","))
    rows: list[dict[str, Any]] = []
    for w in (int(x) for x in args.workers.split(",")):
        rows += run_workers(w, steps, args)
    table = Table(title="WebRTC capacity through bargein serve")
    for col in ("workers", "legs", "server_cpu_pct", "cpu_pct_per_leg", "deadline_misses", "concealed_pct",
                "probe_latency_ms_p50", "max_clean_legs"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(*(str(r.get(str(c.header), "")) for c in table.columns))
    console.print(table)
    load = os.getloadavg()
    console.print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, load average {load[0]:.1f} "
                  f"{load[1]:.1f} {load[2]:.1f} at the end (other work on the machine shares these cores)")
    if args.py_spy:
        for path in sorted(args.py_spy.glob("*/*.txt")):
            console.print(f"[bold]{path.name}[/] top leaf functions (% of samples):")
            for name, pct in top_self(path):
                console.print(f"  {pct:5.1f}  {name}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
