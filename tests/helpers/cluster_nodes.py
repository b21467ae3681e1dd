"""Cluster nodes for tests: real ``python -m bargein.cli serve --redis ...`` processes on 127.0.0.1, each
with one media worker, logs kept in a file (shown when a test fails)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from .redis_server import free_port

READY_S = 120.0  # failure guard: Python, aiortc and a media worker start slowly on a busy 2-core machine


class Node:
    def __init__(self, name: str, redis_url: str, log_dir: Path, data_dir: Path) -> None:
        self.name, self.redis_url, self.data_dir = name, redis_url, data_dir
        self.port = free_port()
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> None:
        env = {**os.environ, "BARGEIN_LOG_LEVEL": os.environ.get("BARGEIN_TEST_NODE_LOG_LEVEL", "INFO"),
               "BARGEIN_DATA_DIR": str(self.data_dir)}  # the cluster's shared storage (records, recordings)
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bargein.cli", "--log-json", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--redis", self.redis_url, "--node-id", self.name, "--media-workers", "1"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    async def health(self, session: aiohttp.ClientSession) -> dict[str, Any] | None:
        try:
            async with session.get(self.base + "/healthz", timeout=aiohttp.ClientTimeout(total=10)) as r:
                return await r.json() if r.status == 200 else None
        except (aiohttp.ClientError, TimeoutError):
            return None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the node's whole process group (its media worker too, as when a machine dies)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Cluster:
    """``names`` nodes on one Redis; the first one started leads."""

    def __init__(self, redis_url: str, names: list[str]) -> None:
        self.log_dir = Path(tempfile.mkdtemp(prefix="bargein-cluster-logs-"))
        self.data_dir = self.log_dir / "data"
        self.nodes = {n: Node(n, redis_url, self.log_dir, self.data_dir) for n in names}

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    async def wait(self, session: aiohttp.ClientSession, leader: str, nodes: list[str] | None = None,
                   timeout_s: float = READY_S) -> None:
        """Until every node in ``nodes`` answers, sees all of them alive and names ``leader``."""
        names = nodes or list(self.nodes)
        deadline = time.monotonic() + timeout_s
        while True:
            healths = await asyncio.gather(*(self.nodes[n].health(session) for n in names))
            if all(h is not None and h["cluster"]["leader"] == leader and
                   set(names) <= {e["node"] for e in h["cluster"]["nodes"]} for h in healths):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster not ready: {healths}\n{self.logs()}")
            await asyncio.sleep(0.25)

    async def start(self, session: aiohttp.ClientSession) -> None:
        first, *rest = list(self.nodes)
        self.nodes[first].start()
        await self.wait(session, first, [first])
        for n in rest:
            self.nodes[n].start()
        await self.wait(session, first)

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {n}\n{node.log_tail()}" for n, node in self.nodes.items())
