"""A bargein cluster on one machine: a local ``redis-server`` and N ``bargein serve --redis`` nodes, each a
process on its own port on 127.0.0.1, for trying the cluster out (``scripts/cluster``) and for
``benchmarks.cluster``. Not for production: every process runs here, and Redis keeps nothing on disk.

    python -m bargein.local_cluster [--nodes 3] [--base-port 8081] [--data-dir DIR] [--demo-calls 6] [-- SERVE_ARGS]

Each node keeps its own data folder (``DIR/node-<i>``); recordings and transcripts go to the shared
``DIR/recordings`` and ``DIR/transcripts``, as shared storage would in production; the contact store is
whatever ``BARGEIN_DATABASE_URL`` says (``scripts/cluster --postgres`` starts a local PostgreSQL for it),
else each node's own SQLite file (then contact search on a node shows only what it stored while it
led). Demo calls are driven from this process (``bargein.cluster_demo``). Ctrl-C stops the demo, the
nodes, then Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger("bargein.local_cluster")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


class LocalCluster:
    """``with LocalCluster(3) as c: c.nodes[0].url``: Redis and the nodes start, and stop at the end."""

    def __init__(self, nodes: int = 3, *, base_port: int | None = None, redis_port: int | None = None,
                 data_dir: Path | None = None, serve_args: Sequence[str] = (),
                 node_args: Sequence[Sequence[str]] | None = None, env: dict[str, str] | None = None,
                 log_level: str = "WARNING", ready_timeout_s: float = 120.0) -> None:
        self.n = nodes
        self.base_port = base_port
        self.redis_port = redis_port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = (data_dir or Path(tempfile.mkdtemp(prefix="bargein-cluster-"))).resolve()
        self.serve_args = list(serve_args)
        self.node_args = [list(a) for a in node_args] if node_args is not None else [[] for _ in range(nodes)]
        self.env = env or {}
        self.log_level = log_level
        self.ready_timeout_s = ready_timeout_s
        self.redis: subprocess.Popen[bytes] | None = None
        self.nodes: list[Node] = []

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    # ------------------------------------------------------------------ start
    def start(self) -> None:
        """Redis, then node n1 until it leads (the first node started takes the lead), then the others,
        until every node sees them all."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._start_redis()
        first = self.start_node(0)
        self.wait_ready(first, leader=first.name, nodes=1)
        for i in range(1, self.n):
            self.start_node(i)
        for node in self.nodes:
            self.wait_ready(node, leader=first.name, nodes=self.n)
        log.info("cluster.ready", nodes=[n.url for n in self.nodes], redis=self.redis_url, leader=first.name)

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
        rdir = self.data_dir / "redis"
        rdir.mkdir(exist_ok=True)
        with open(rdir / "redis.log", "ab") as out:
            self.redis = subprocess.Popen(
                [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(rdir),
                 "--save", "", "--appendonly", "no", "--daemonize", "no"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.redis.poll() is not None:
                raise RuntimeError(f"redis-server exited: {(rdir / 'redis.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING within 30 s")

    def start_node(self, i: int) -> Node:
        """Start node ``i`` (again, on its old port if it ran before)."""
        name = f"n{i + 1}"
        old = next((n for n in self.nodes if n.name == name), None)
        port = old.port if old else (self.base_port + i if self.base_port else free_port())
        node_dir = self.data_dir / name
        node_dir.mkdir(exist_ok=True)
        env = {**os.environ, "BARGEIN_DATA_DIR": str(node_dir),
               "BARGEIN_RECORDINGS_DIR": str(self.data_dir / "recordings"),
               "BARGEIN_TRANSCRIPTS_DIR": str(self.data_dir / "transcripts"), **self.env}
        cmd = [sys.executable, "-m", "bargein.cli", "--log-level", self.log_level, "serve", "--host", "127.0.0.1",
               "--port", str(port), "--redis", self.redis_url, "--node-id", name, *self.serve_args, *self.node_args[i]]
        logfile = self.data_dir / f"{name}.log"
        with open(logfile, "ab") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        node = Node(name, port, proc, logfile)
        self.nodes = [n for n in self.nodes if n.name != name] + [node]
        self.nodes.sort(key=lambda n: int(n.name[1:]))
        return node

    def health(self, node: Node) -> dict | None:
        try:
            with urllib.request.urlopen(node.url + "/healthz", timeout=5) as r:
                return json.loads(r.read()) if r.status == 200 else None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def wait_ready(self, node: Node, leader: str | None = None, nodes: int = 1) -> None:
        """Until ``node`` answers ``/healthz``, names ``leader`` and sees ``nodes`` live nodes."""
        deadline = time.monotonic() + self.ready_timeout_s  # failure guard: start-up is slow on a loaded machine
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise RuntimeError(f"{node.name} exited ({node.proc.returncode}): {node.log.read_text()[-3000:]}")
            h = self.health(node)
            cluster = (h or {}).get("cluster") or {}
            if h is not None and (leader is None or cluster.get("leader") == leader) \
                    and len(cluster.get("nodes", [])) >= nodes:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{node.name} did not come up at {node.url}: {node.log.read_text()[-3000:]}")

    # ------------------------------------------------------------------ the leader
    def leader(self) -> Node:
        """The node that runs the signaling core now (``/healthz`` ``cluster.leader``, as a node sees it)."""
        for node in self.nodes:
            h = self.health(node)
            holder = ((h or {}).get("cluster") or {}).get("leader")
            match = next((n for n in self.nodes if n.name == holder), None)
            if match is not None:
                return match
        raise RuntimeError("no node of this cluster names a leader")

    # ------------------------------------------------------------------ stop
    def stop_node(self, node: Node, grace_s: float = 20.0) -> None:
        """Stop one node cleanly (SIGINT: it ends its calls), killing it if it does not exit in time."""
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGINT)
            try:
                node.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                log.warning("cluster.node_killed", node=node.name, why=f"still running {grace_s:g} s after SIGINT")
                node.proc.kill()
                node.proc.wait(10)

    def stop(self) -> None:
        for node in self.nodes:  # all at once, then wait for each
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGINT)
        for node in self.nodes:
            self.stop_node(node)
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            try:
                self.redis.wait(10)
            except subprocess.TimeoutExpired:
                self.redis.kill()
                self.redis.wait(10)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _watch(cluster: LocalCluster, demo: int, audio: int) -> int:
    """Run the demo calls until Ctrl-C / SIGTERM (returns 0) or a node exits (returns 1)."""
    from bargein.cluster_demo import run_demo

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    demo_task = asyncio.create_task(run_demo([n.ws for n in cluster.nodes], demo, audio)) if demo else None
    try:
        while not stop.is_set():
            for node in cluster.nodes:
                if node.proc.poll() is not None:
                    log.error("cluster.node_exited", node=node.name, code=node.proc.returncode, log=str(node.log))
                    return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        return 0
    finally:
        if demo_task is not None:  # the demo's clients hang up and close their peers before the nodes stop
            demo_task.cancel()
            await asyncio.gather(demo_task, return_exceptions=True)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    from bargein.cluster_demo import queues_env
    from bargein.logs import configure_logging

    out = Console(highlight=False)
    ap = argparse.ArgumentParser(prog="python -m bargein.local_cluster", description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=3, help="how many nodes (default 3)")
    ap.add_argument("--base-port", type=int, default=8081, help="node i listens on base-port + i - 1 (default 8081)")
    ap.add_argument("--redis-port", type=int, default=None, help="redis-server's port (default: a free one)")
    ap.add_argument("--data-dir", type=Path, default=Path("bargein-data/cluster"),
                    help="node data, shared recordings, Redis's folder, logs (default ./bargein-data/cluster)")
    ap.add_argument("--demo-calls", type=int, default=6, help="demo calls, their parties on different nodes (default 6)")
    ap.add_argument("--audio-calls", type=int, default=3,
                    help="how many of them carry audio over WebRTC (default 3; the rest are signaling-only)")
    ap.add_argument("--log-level", default="WARNING", help="the nodes' log level (their logs: DATA_DIR/n<i>.log)")
    ap.add_argument("serve_args", nargs="*", help="more `bargein serve` arguments for every node (after --)")
    args = ap.parse_args(argv)
    configure_logging("WARNING", json=False)
    cluster = LocalCluster(args.nodes, base_port=args.base_port, redis_port=args.redis_port, data_dir=args.data_dir,
                           serve_args=["--media-workers", "1", "--load-users", str(max(args.demo_calls, 1)),
                                       *args.serve_args],  # a later flag wins
                           env=queues_env(args.demo_calls), log_level=args.log_level)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops cleanly, like Ctrl-C
    try:
        out.print(f"starting Redis and {args.nodes} nodes (data and logs: {cluster.data_dir}) ...")
        cluster.start()
        out.print(f"Redis: {cluster.redis_url}")
        for node in cluster.nodes:
            out.print(f"{node.name}: [bold]{node.url}/[/]{'  (signaling leader)' if node.name == 'n1' else ''}")
        out.print(f"{args.demo_calls} demo calls ({min(args.audio_calls, args.demo_calls)} with audio: customer "
                  "500 Hz, agent 750 Hz), each call's parties on two different nodes. Sign in at any node as "
                  "supervisor1, agent1, customer1, ... Ctrl-C stops everything.")
        code = asyncio.run(_watch(cluster, args.demo_calls, args.audio_calls))
        out.print("stopping the nodes, then Redis ...")
        return code
    except KeyboardInterrupt:  # during start-up
        out.print("stopping the nodes, then Redis ...")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean stop short
        cluster.stop()


if __name__ == "__main__":
    raise SystemExit(main())
