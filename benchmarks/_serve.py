"""``bargein serve`` as a subprocess on 127.0.0.1 for a benchmark: started, awaited, stopped."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout: float = 30.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def bargein_serve(*serve_args: str, log_level: str = "WARNING", env: dict[str, str] | None = None,
                  show_output: bool = True, ready: Callable[[dict[str, Any]], bool] = lambda health: True,
                  start_timeout_s: float = 120.0, cpus: set[int] | None = None,
                  ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Yields (base URL, process) once ``/healthz`` answers and ``ready(health)`` holds; stops it after.
    ``cpus``: pin the server (and so the media workers it starts) to these cores."""
    port = free_port()
    cmd = [sys.executable, "-m", "bargein.cli", "--log-level", log_level, "serve", "--host", "127.0.0.1",
           "--port", str(port), *serve_args]
    out = None if show_output else subprocess.DEVNULL
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=out, preexec_fn=pin)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"bargein serve exited with {proc.returncode}: {' '.join(cmd)}")
            with contextlib.suppress(OSError, ValueError):
                if ready(get_json(base + "/healthz", timeout=5)):
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"bargein serve was not ready in {start_timeout_s:g} s")
            time.sleep(0.2)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
