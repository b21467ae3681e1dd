"""One-way audio latency by tone onsets: a direct aiortc peer-to-peer pair vs the path through the server.

    python -m benchmarks.webrtc_latency --json PATH [--duration S] [--p2p-duration S] [--budget PATH]

The sender is an aiortc client whose track plays a 1 kHz burst at the start of every second (300 ms on,
then silence), paced to real time; the moment its ``recv()`` hands out the frame that starts a burst is
the onset. The receiver is an aiortc client too: the onset is the first decoded sample above a third of
the burst's amplitude, timed when aiortc hands the decoded frame over (plus that sample's offset in it).
Every time is ``time.monotonic()``, one clock for every process on the machine.

* ``p2p``: the two clients connected to each other directly (in this process).
* ``server``: ``bargein serve`` started as a subprocess on 127.0.0.1 with the demo directory; the
  sender is a customer calling the support queue, the receiver the agent who answers.

Rows (JSON, exactly these keys): ``{"path", "onsets", "latency_ms_p50", "latency_ms_p95",
"first_minute_ms_p50", "last_minute_ms_p50"}``. With ``--budget PATH`` the server is started with its
onset probe on (``BARGEIN_TRACE_ONSETS``) and the per-stage budget of both paths is written there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from bargein.mixer.tones import tone
from bargein.signaling.client import place_call, sign_in
from bargein.signaling.webrtc import no_ice_servers
from rich.console import Console
from rich.table import Table

from bargein.logs import configure_logging

console = Console()
RATE, SAMPLES = 48000, 960
FREQ, AMPLITUDE = 1000.0, 0.25
PERIOD_FRAMES, BURST_FRAMES = 50, 15  # a burst every second, 300 ms long
THRESHOLD = AMPLITUDE * 32767 / 3
MATCH_S = 0.9  # an onset heard more than this after it was sent is not counted


class BurstTrack(MediaStreamTrack):
    """1 kHz bursts (or silence), paced to real time; notes when each burst's first frame is handed out."""

    kind = "audio"

    def __init__(self, silent: bool = False) -> None:
        super().__init__()
        self.silent = silent
        self.onsets: list[float] = []
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        self._start = self._start or now
        due = self._start + self._n * 0.02
        if due > now:
            await asyncio.sleep(due - now)
        k = self._n % PERIOD_FRAMES
        if self.silent or k >= BURST_FRAMES:
            pcm = np.zeros(SAMPLES, np.int16)
        else:
            pcm = tone(FREQ, RATE, SAMPLES, AMPLITUDE, start=k * SAMPLES)
        frame = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate, frame.pts, frame.time_base = RATE, self._n * SAMPLES, fractions.Fraction(1, RATE)
        self._n += 1
        if k == 0 and not self.silent:
            self.onsets.append(time.monotonic())
        return frame


class OnsetListener:
    """Decodes what a peer connection receives and notes burst onsets; also when each RTP packet arrived."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.onsets: list[tuple[float, float]] = []  # (onset time, when its packet arrived here)
        self.arrivals: dict[int, float] = {}  # RTP timestamp relative to the first packet -> arrival
        self._first_ts: int | None = None
        self._task: asyncio.Task[None] | None = None

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._task = asyncio.get_running_loop().create_task(self._drain(track))

    def watch_packets(self, pc: RTCPeerConnection) -> None:
        """Time every RTP packet as aiortc's receiver files it into its jitter buffer."""
        receiver = pc.getTransceivers()[0].receiver
        buffer = receiver._RTCRtpReceiver__jitter_buffer  # benchmark-only probe (aiortc 1.16)
        add = buffer.add

        def timed_add(packet: Any) -> Any:
            if self._first_ts is None:
                self._first_ts = packet.timestamp
            self.arrivals[(packet.timestamp - self._first_ts) & 0xFFFFFFFF] = time.monotonic()
            return add(packet)

        buffer.add = timed_add

    async def _drain(self, track: MediaStreamTrack) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        quiet, in_burst = 0, False
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                got = time.monotonic()
                pts = frame.pts
                for out in resampler.resample(frame):
                    x = np.abs(out.to_ndarray().reshape(-1).astype(np.int32))
                    if not in_burst:
                        loud = np.flatnonzero(x > THRESHOLD)
                        if loud.size:
                            in_burst, quiet = True, 0
                            arrived = self.arrivals.get(pts, float("nan")) if pts is not None else float("nan")
                            self.onsets.append((got + loud[0] / RATE, arrived))
                    elif x.max() < THRESHOLD / 3:
                        quiet += 1
                        in_burst = quiet < 10
                    else:
                        quiet = 0

    async def close(self) -> None:
        if self._task:
            self._task.cancel()


def match(sent: list[float], heard: list[float]) -> list[tuple[float, float]]:
    """(sent onset, latency s) for every sent onset heard within MATCH_S."""
    out, j = [], 0
    heard = sorted(heard)
    for s in sent:
        while j < len(heard) and heard[j] < s:
            j += 1
        if j < len(heard) and heard[j] - s < MATCH_S:
            out.append((s, heard[j] - s))
            j += 1
    return out


def row(path: str, pairs: list[tuple[float, float]], start: float, end: float) -> dict:
    lat = np.array([d for _, d in pairs]) * 1000
    first = [d * 1000 for s, d in pairs if s - start < 60]
    last = [d * 1000 for s, d in pairs if end - s <= 60]

    def p(v: Any, q: float) -> float | None:
        return round(float(np.percentile(v, q)), 1) if len(v) else None

    return {"path": path, "onsets": len(pairs), "latency_ms_p50": p(lat, 50), "latency_ms_p95": p(lat, 95),
            "first_minute_ms_p50": p(first, 50), "last_minute_ms_p50": p(last, 50)}


def stage_ms(sent: list[float], marks: list[float]) -> float | None:
    pairs = match(sent, marks)
    return round(float(np.median([d for _, d in pairs])) * 1000, 1) if pairs else None


# ---------------------------------------------------------------------------------------- p2p
async def run_p2p(duration: float) -> tuple[dict, dict]:
    sender, receiver = RTCPeerConnection(no_ice_servers()), RTCPeerConnection(no_ice_servers())
    track = BurstTrack()
    sender.addTrack(track)
    receiver.addTrack(BurstTrack(silent=True))
    listener = OnsetListener(receiver)
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    listener.watch_packets(receiver)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(receiver.localDescription)
    start = time.monotonic()
    await asyncio.sleep(duration)
    end = time.monotonic()
    await listener.close()
    await sender.close()
    await receiver.close()
    pairs = match(track.onsets, [t for t, _ in listener.onsets])
    budget = client_budget(track.onsets, listener)
    return row("p2p", pairs, start, end), budget


def client_budget(sent: list[float], listener: OnsetListener) -> dict:
    arrived = [a for _, a in listener.onsets if a == a]
    hold = [t - a for t, a in listener.onsets if a == a]
    return {"client packet arrival (from send)": stage_ms(sent, arrived),
            "client jitter buffer + decode": round(float(np.median(hold)) * 1000, 1) if hold else None}


# ---------------------------------------------------------------------------------------- server
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def bargein_server(trace: Path | None) -> Any:
    port = free_port()
    env = dict(os.environ)
    if trace is not None:
        env["BARGEIN_TRACE_ONSETS"] = str(trace)
    proc = subprocess.Popen([sys.executable, "-m", "bargein.cli", "--log-level", os.environ.get("BENCH_SERVER_LOG", "WARNING"), "serve",
                             "--host", "127.0.0.1", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(base + "/healthz") as r:
                        if r.status == 200:
                            break
                if proc.poll() is not None:
                    raise SystemExit(f"bargein serve exited with {proc.returncode}")
                await asyncio.sleep(0.1)
            yield base, session, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Peer:
    """A client leg for the signaling client (its ``Media``): an aiortc peer with a burst or silent track."""

    def __init__(self, silent: bool) -> None:
        self.pc = RTCPeerConnection(no_ice_servers())
        self.track = BurstTrack(silent=silent)
        self.pc.addTrack(self.track)
        self.listener = OnsetListener(self.pc)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))
        self.listener.watch_packets(self.pc)


async def run_server(duration: float, trace: Path | None) -> tuple[dict, dict]:
    async with bargein_server(trace) as (base, session, pid):
        ws = base.replace("http", "ws") + "/ws"
        agent = await sign_in(ws, "agent1", session=session, state="available")
        customer = await sign_in(ws, "customer1", session=session)
        cust, ag = Peer(silent=False), Peer(silent=True)
        await place_call(customer, agent, customer_media=cust, agent_media=ag)
        track, listener = cust.track, ag.listener
        cpu0 = cpu_seconds(pid)
        start = time.monotonic()
        deadline = start + duration
        while time.monotonic() < deadline:
            await asyncio.sleep(min(10.0, deadline - time.monotonic()))
            console.log(f"server path: {time.monotonic() - start:.0f} s, {len(listener.onsets)} onsets heard")
            async with session.get(base + "/healthz") as r:
                if (await r.json())["calls"] == 0:  # e.g. a starved machine: the watchdog ended it
                    console.log(f"[red]the call ended after {time.monotonic() - start:.0f} s; measuring that")
                    break
        end = time.monotonic()
        cpu = cpu_seconds(pid) - cpu0
        async with session.get(base + "/healthz") as r:
            health = await r.json()
        console.log(f"server: {100 * cpu / (end - start):.1f} % of a core; mixer {health['mixer']}; "
                    f"inbound {health.get('inbound')}")
        await listener.close()
        await cust.listener.close()
        await cust.pc.close()
        await ag.pc.close()
        await agent.close()
        await customer.close()
    pairs = match(track.onsets, [t for t, _ in listener.onsets])
    budget = client_budget(track.onsets, listener)
    if trace is not None and trace.exists():
        budget["stages_ms"] = server_budget(track.onsets, trace, listener)
    return row("server", pairs, start, end), budget


STAGES = ("arrival", "played", "mixed", "sent")


def server_budget(sent: list[float], trace: Path, listener: OnsetListener) -> dict:
    """Per onset, follow it stage by stage (each stage's first mark after the previous one); the
    budget is the median of each step over the onsets seen at every stage."""
    marks: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for line in trace.read_text().splitlines():
        rec = json.loads(line)
        marks.setdefault(rec["stage"], []).append(rec["t"])
    heard = sorted(listener.onsets)
    chains = []
    for s in sent:
        chain, t = [s], s
        for times in [*(marks[stage] for stage in STAGES), [a for _, a in heard], [h for h, _ in heard]]:
            nxt = next((x for x in sorted(times) if x >= t), None)
            if nxt is None or nxt - s > MATCH_S:
                break
            chain.append(nxt)
            t = nxt
        else:
            chains.append(np.diff(chain) * 1000)
    if not chains:
        return {}
    steps = np.median(np.array(chains), axis=0)
    names = ["client send -> server packet decoded", "server adaptive buffer + tick alignment",
             "mix (tick compute)", "shared encode + outbound queue -> aiortc sender",
             "server send -> client packet arrival", "client jitter buffer + decode"]
    return {"onsets_followed": len(chains), **{n: round(float(v), 1) for n, v in zip(names, steps, strict=True)},
            "total_ms": round(float(np.median(np.array(chains).sum(axis=1))), 1)}


# ---------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.webrtc_latency", description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write the two rows here")
    ap.add_argument("--duration", type=float, default=300.0, help="seconds of call through the server (default 300)")
    ap.add_argument("--p2p-duration", type=float, default=None,
                    help="seconds of the direct call (default: --duration, at most 60, at least 35)")
    ap.add_argument("--budget", type=Path, help="also probe the server's stages and write the budget here")
    args = ap.parse_args(argv)
    configure_logging("WARNING")
    p2p_s = args.p2p_duration or max(35.0, min(60.0, args.duration))

    async def both() -> tuple[list[dict], dict]:
        console.log(f"p2p: {p2p_s:.0f} s")
        p2p, p2p_budget = await run_p2p(p2p_s)
        console.log(f"server: {args.duration:.0f} s")
        with tempfile.TemporaryDirectory() as tmp:
            trace = Path(tmp) / "onsets.jsonl" if args.budget else None
            server, server_budget_ = await run_server(args.duration, trace)
        return [p2p, server], {"p2p": p2p_budget, "server": server_budget_}

    rows, budget = asyncio.run(both())
    table = Table(title="One-way latency by tone onset (ms)")
    for col in ("path", "onsets", "p50", "p95", "first minute p50", "last minute p50"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["path"], str(r["onsets"]), *(str(r[k]) for k in (
            "latency_ms_p50", "latency_ms_p95", "first_minute_ms_p50", "last_minute_ms_p50")))
    console.print(table)
    p2p, server = rows
    if p2p["latency_ms_p50"] and server["latency_ms_p50"]:
        console.print(f"server / p2p (p50): {server['latency_ms_p50'] / p2p['latency_ms_p50']:.2f} (target <= 1.3); "
                      f"last - first minute: {server['last_minute_ms_p50'] - server['first_minute_ms_p50']:+.1f} ms "
                      "(target <= +20)")
    if args.budget:
        console.print(budget)
        args.budget.parent.mkdir(parents=True, exist_ok=True)
        args.budget.write_text(json.dumps(budget, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
        console.log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
