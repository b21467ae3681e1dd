"""Floods a live ``bargein serve`` on 127.0.0.1 with hostile traffic and reports what it did to the mixer.

    python -m benchmarks.abuse --json benchmarks/results/abuse.json [--phase-s 10] [--demo-calls 4] \
        [--clients 8] [--serve-args "--media-workers 2"]

Phases, in order, each ``--phase-s`` long: ``baseline`` (demo calls only), ``sdp_flood`` (INVITE with
a ~20 KB offer of 300 audio sections, then BYE, in a loop from every client), ``invite_flood``
(reconnect, sign in, unanswerable INVITEs), ``signin_flood`` (wrong-token REGISTERs across
reconnects), ``conn_flood`` (up to 1,000 sockets that never sign in, held open), ``after``.
For each phase: mixer deadline misses and skipped ticks (deltas from ``/healthz``), ``/healthz``
latency p50/p99, the server's RSS (all its processes), requests sent and the statuses they got.
Every loop is bounded in time and stops by itself; nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from ._report import console, print_table, write_json
from ._serve import bargein_serve

HEAD = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
AUDIO = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n"
BIG_OFFER = HEAD + AUDIO * 300
CUSTOMERS = [f"customer{i}" for i in range(1, 6)]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


class Phase:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent = 0
        self.statuses: Counter[int] = Counter()
        self.health_ms: list[float] = []
        self.rss_mb: list[float] = []


async def request(ws: aiohttp.ClientWebSocketResponse, phase: Phase, msg: dict[str, Any]) -> dict[str, Any] | None:
    await ws.send_json(msg)
    phase.sent += 1
    while True:
        frame = await ws.receive(timeout=10)
        if frame.type != aiohttp.WSMsgType.TEXT:
            return None
        data = json.loads(frame.data)
        if data.get("type") == "response" and data.get("cseq") == msg.get("cseq") and data["status"] >= 200:
            phase.statuses[data["status"]] += 1
            return data


async def sdp_flood(url: str, phase: Phase, stop: float, who: str) -> None:
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < stop:
            try:
                async with s.ws_connect(url) as ws:
                    cseq = 1
                    if (await request(ws, phase, {"method": "REGISTER", "cseq": cseq, "token": who}) or {}).get(
                            "status") != 200:
                        await asyncio.sleep(0.2)
                        continue
                    while time.monotonic() < stop:
                        cseq += 1
                        r = await request(ws, phase, {"method": "INVITE", "cseq": cseq, "to": "queue:support",
                                                      "sdp": BIG_OFFER})
                        if r is None:
                            break
                        if r.get("call_id"):
                            cseq += 1
                            await request(ws, phase, {"method": "BYE", "cseq": cseq, "call_id": r["call_id"]})
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.1)


async def invite_flood(url: str, phase: Phase, stop: float, who: str) -> None:
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < stop:
            try:
                async with s.ws_connect(url) as ws:
                    await request(ws, phase, {"method": "REGISTER", "cseq": 1, "token": who})
                    for cseq in range(2, 40):
                        r = await request(ws, phase, {"method": "INVITE", "cseq": cseq, "to": "queue:nowhere"})
                        if r is None or time.monotonic() >= stop:
                            break
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.1)


async def signin_flood(url: str, phase: Phase, stop: float, who: str) -> None:
    async with aiohttp.ClientSession() as s:
        n = 0
        while time.monotonic() < stop:
            try:
                async with s.ws_connect(url) as ws:
                    for cseq in range(1, 5):
                        n += 1
                        r = await request(ws, phase, {"method": "REGISTER", "cseq": cseq, "token": f"guess-{n}"})
                        if r is None:
                            break
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.1)


async def conn_flood(url: str, phase: Phase, stop: float, who: str) -> None:
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    held: list[asyncio.StreamWriter] = []
    try:
        while time.monotonic() < stop:
            if len(held) >= 1000 // 8:
                await asyncio.sleep(0.1)
                continue
            try:
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write((f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n").encode())
                await writer.drain()
                status = await asyncio.wait_for(reader.readline(), 5)
                phase.sent += 1
                phase.statuses[int(status.split()[1]) if len(status.split()) > 1 else 0] += 1
                held.append(writer)
            except (OSError, TimeoutError, ValueError):
                await asyncio.sleep(0.1)
    finally:
        for w in held:
            w.close()


FLOODS = {"sdp_flood": sdp_flood, "invite_flood": invite_flood, "signin_flood": signin_flood,
          "conn_flood": conn_flood}


async def watch(base: str, pid: int, phase: Phase, stop: float) -> None:
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                async with s.get(base + "/healthz", timeout=aiohttp.ClientTimeout(total=10)) as r:
                    await r.read()
                phase.health_ms.append((time.perf_counter() - t0) * 1000)
            except (aiohttp.ClientError, TimeoutError):
                phase.health_ms.append(10_000.0)
            phase.rss_mb.append(tree_rss_mb(pid))
            await asyncio.sleep(0.1)


async def mixer_counters(base: str) -> tuple[int, int]:
    async with aiohttp.ClientSession() as s, s.get(base + "/healthz") as r:
        mixer = (await r.json())["mixer"]
    return int(mixer.get("deadline_misses", 0)), int(mixer.get("skipped_ticks", 0))


async def run(args: argparse.Namespace, base: str, pid: int) -> list[dict[str, Any]]:
    url = base.replace("http://", "ws://") + "/ws"
    rows = []
    for name in ["baseline", *FLOODS, "after"]:
        phase = Phase(name)
        misses0, skipped0 = await mixer_counters(base)
        stop = time.monotonic() + args.phase_s
        flood = FLOODS.get(name)
        tasks = [watch(base, pid, phase, stop)]
        if flood is not None:
            tasks += [flood(url, phase, stop, CUSTOMERS[i % len(CUSTOMERS)]) for i in range(args.clients)]
        await asyncio.gather(*tasks)
        await asyncio.sleep(0.5)  # let the flood's last requests drain before reading the counters
        misses1, skipped1 = await mixer_counters(base)
        h = np.array(phase.health_ms or [0.0])
        rows.append({"phase": name, "seconds": args.phase_s, "requests": phase.sent,
                     "statuses": dict(sorted(phase.statuses.items())),
                     "deadline_misses": misses1 - misses0, "skipped_ticks": skipped1 - skipped0,
                     "healthz_ms_p50": round(float(np.percentile(h, 50)), 2),
                     "healthz_ms_p99": round(float(np.percentile(h, 99)), 2),
                     "rss_mb": round(max(phase.rss_mb or [0.0]), 1)})
        console.log(rows[-1])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.abuse", description=__doc__.split("\n\n")[0])
    ap.add_argument("--phase-s", type=float, default=10.0, help="seconds per phase (default 10)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent hostile clients per flood (default 8)")
    ap.add_argument("--demo-calls", type=int, default=4, help="demo calls keeping the mixer busy (default 4)")
    ap.add_argument("--serve-args", default="", help="extra arguments for `bargein serve`")
    ap.add_argument("--json", type=Path, help="write result rows here")
    args = ap.parse_args(argv)
    with bargein_serve("--demo-calls", str(args.demo_calls), *shlex.split(args.serve_args), log_level="ERROR",
                       show_output=False) as (base, server):
        time.sleep(2.0)  # the demo calls start
        rows = asyncio.run(run(args, base, server.pid))
    print_table(f"abuse: {args.clients} clients per flood, {args.phase_s:g} s per phase", rows, [
        "phase", "requests", ("deadline misses", "deadline_misses"), ("skipped ticks", "skipped_ticks"),
        ("/healthz p50 ms", lambda r: f"{r['healthz_ms_p50']:.1f}"), ("p99 ms", lambda r: f"{r['healthz_ms_p99']:.1f}"),
        ("RSS MB", lambda r: f"{r['rss_mb']:.0f}"),
        ("statuses", lambda r: ", ".join(f"{k}×{v}" for k, v in r["statuses"].items()))])
    write_json(args.json, {"command": "python -m benchmarks.abuse " + " ".join(argv or sys.argv[1:]), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
