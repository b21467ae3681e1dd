"""Cluster benchmark: call set-ups per second, and the signaling round trip of a request handled by the
leader's own socket vs relayed to it from another node, for clusters of 1, 2, 3 ... nodes on this machine.

    python -m benchmarks.cluster --nodes 1,2,3 --json benchmarks/results/cluster.json \
        [--duration 10] [--pairs 6] [--rtt-requests 400]

For each node count a fresh cluster starts (``bargein.local_cluster``: a local ``redis-server`` and
``bargein serve --redis ... --node-id nK --media-workers 1 --load-users N`` processes on 127.0.0.1; n1
starts first and leads), then:

- **set-ups**: ``--pairs`` customer/agent pairs place calls for ``--duration`` seconds, each pair in a
  loop of INVITE (answered by its agent) then BYE. Pair k's customer signs in on node k mod n and its
  agent on node k+1 mod n, and each pair has a queue of its own (``benchk``, only its agent), so no
  pair waits for another's agent. The calls are **signaling-only** (no SDP, no audio): the set-up
  rate is the signaling path's (relay, leader, placement of the call on a media node), not WebRTC's.
- **round trip**: two signed-in clients send OPTIONS one after the other, alternating, ``--rtt-requests``
  each: one connected to the signaling leader (handled locally) and one connected to another node
  (relayed over Redis pub/sub to the leader and back). With one node there is nothing to relay.

Rate limits are lifted on the benchmark's nodes (``BARGEIN_MAX_REQUESTS_PER_SECOND``...): one client
sends far more than 50 requests a second here. Every process is stopped at the end of each run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from bargein.signaling.client import SignalingClient, place_call, sign_in

from bargein.local_cluster import LocalCluster
from bargein.logs import configure_logging

from ._report import console, print_table, write_json


def node_env(pairs: int) -> dict[str, str]:
    queues = {f"bench{k}": {"agents": [f"loadagent{k}"], "record": "none"} for k in range(1, pairs + 1)}
    queues["support"] = {}
    return {"BARGEIN_QUEUES": json.dumps(queues), "BARGEIN_MAX_REQUESTS_PER_SECOND": "1000000",
            "BARGEIN_MAX_REQUESTS_PER_SECOND_PER_ADDRESS": "1000000", "BARGEIN_RETENTION_DAYS": "1"}


async def one_call(customer: SignalingClient, agent: SignalingClient, queue: str) -> None:
    """The customer calls the pair's queue, its agent answers, the customer hangs up."""
    call_id = await place_call(customer, agent, to=f"queue:{queue}", timeout=30)
    r = await customer.request("BYE", call_id=call_id, timeout=30)
    if r["status"] != 200:
        raise RuntimeError(f"BYE refused: {r}")


async def pair_loop(customer: SignalingClient, agent: SignalingClient, queue: str, stop: float,
                    done: list[float]) -> None:
    while time.monotonic() < stop:
        await one_call(customer, agent, queue)
        done.append(time.monotonic())


async def measure_setups(cluster: LocalCluster, pairs: int, duration: float,
                         session: aiohttp.ClientSession) -> tuple[float, int]:
    n = len(cluster.nodes)
    clients: list[SignalingClient] = []
    try:
        work = []
        for k in range(1, pairs + 1):
            agent = await sign_in(cluster.nodes[k % n].ws, f"loadagent{k}", session=session, state="available")
            customer = await sign_in(cluster.nodes[(k - 1) % n].ws, f"loadcustomer{k}", session=session)
            clients += [agent, customer]
            work.append((customer, agent, f"bench{k}"))
        # one call per pair first (warm-up, not counted), then the timed loops
        await asyncio.gather(*(one_call(c, a, q) for c, a, q in work))
        done: list[float] = []
        t0 = time.monotonic()
        await asyncio.gather(*(pair_loop(c, a, q, t0 + duration, done) for c, a, q in work))
        elapsed = time.monotonic() - t0
        return len(done) / elapsed, len(done)
    finally:
        for c in clients:
            await c.close()


async def measure_rtt(cluster: LocalCluster, requests: int,
                      session: aiohttp.ClientSession) -> tuple[list[float], list[float]]:
    leader = cluster.leader()
    other = next((node for node in cluster.nodes if node is not leader), None)
    local = await sign_in(leader.ws, "loadsupervisor1", session=session)
    relayed = await sign_in(other.ws, "loadsupervisor2", session=session) if other else None
    local_ms: list[float] = []
    relayed_ms: list[float] = []
    try:
        for i in range(requests + 20):  # the first 20 of each warm up
            for client, out in ((local, local_ms), (relayed, relayed_ms)):
                if client is None:
                    continue
                t0 = time.perf_counter()
                r = await client.request("OPTIONS", timeout=10)
                dt = (time.perf_counter() - t0) * 1000
                if r["status"] != 200:
                    raise RuntimeError(f"OPTIONS got {r}")
                if i >= 20:
                    out.append(dt)
    finally:
        await local.close()
        if relayed is not None:
            await relayed.close()
    return local_ms, relayed_ms


def pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.array(xs), q)), 3) if xs else None


async def run_one(n: int, args: argparse.Namespace) -> dict[str, Any]:
    cluster = LocalCluster(n, env=node_env(args.pairs), log_level="WARNING",
                           serve_args=["--media-workers", "1", "--load-users", str(max(args.pairs, 2))])
    await asyncio.to_thread(cluster.start)
    try:
        async with aiohttp.ClientSession() as session:
            rate, calls = await measure_setups(cluster, args.pairs, args.duration, session)
            local_ms, relayed_ms = await measure_rtt(cluster, args.rtt_requests, session)
    finally:
        await asyncio.to_thread(cluster.stop)
    row: dict[str, Any] = {
        "nodes": n, "setups_per_s": round(rate, 1),
        "rtt_local_ms_p50": pct(local_ms, 50), "rtt_local_ms_p99": pct(local_ms, 99),
        "rtt_relayed_ms_p50": pct(relayed_ms, 50), "rtt_relayed_ms_p99": pct(relayed_ms, 99),
    }
    row["relay_added_ms_p50"] = (round(row["rtt_relayed_ms_p50"] - row["rtt_local_ms_p50"], 3)
                                 if relayed_ms else None)
    row.update({"calls": calls, "call_kind": "signaling-only (no SDP, no audio)", "pairs": args.pairs,
                "duration_s": args.duration, "rtt_requests": args.rtt_requests})
    console.log(row)
    return row


def _ms(key: str) -> tuple[str, object]:
    return key.removeprefix("rtt_").replace("_ms_", " ").replace("_", " "), \
        lambda r: None if r.get(key) is None else f"{r[key]:.2f}"


COLUMNS = ["nodes", ("set-ups/s", "setups_per_s"), _ms("rtt_local_ms_p50"), _ms("rtt_local_ms_p99"),
           _ms("rtt_relayed_ms_p50"), _ms("rtt_relayed_ms_p99"), ("relay adds p50 ms", "relay_added_ms_p50")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="1,2,3", help="node counts, comma-separated (default 1,2,3)")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of call set-ups per node count (default 10)")
    ap.add_argument("--pairs", type=int, default=6, help="concurrent customer/agent pairs (default 6)")
    ap.add_argument("--rtt-requests", type=int, default=400, help="OPTIONS per client per node count (default 400)")
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args(argv)
    configure_logging("WARNING", json=False)
    counts = [int(x) for x in args.nodes.split(",") if x.strip()]
    load_before = os.getloadavg()
    rows = [asyncio.run(run_one(n, args)) for n in counts]
    print_table("cluster on one machine: signaling-only call set-ups, OPTIONS round trip (ms)", rows, COLUMNS)
    load_after = os.getloadavg()
    console.log(f"load average (1, 5, 15 min): before {load_before}, after {load_after}")
    write_json(args.json, {"command": "python -m benchmarks.cluster " + " ".join(
        argv if argv is not None else sys.argv[1:]), "load_average_before": list(load_before),
        "load_average_after": list(load_after), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
