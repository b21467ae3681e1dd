"""Recording calls that media workers mix: each worker runs a :class:`~bargein.signaling.recorder.CallRecorder`
for its own calls (tap in its tick, writer thread in its process); the signaling process only says
start and stop, and hears of failures (docs/records.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .pool import WorkerPool


class PoolRecorder:
    """The :class:`~bargein.signaling.contact_log.Recorder` of a server whose media runs in workers."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.on_error: Callable[[int, str], None] = lambda rec_id, reason: None
        pool.on_recording_failed = lambda rec_id, reason: self.on_error(rec_id, reason)

    def start(self) -> None:
        pass  # the workers start their writers themselves

    def record(self, call_id: str, rec_id: int, path: Path, channels: tuple[bool, bool]) -> str | None:
        return self.pool.start_recording(call_id, rec_id, str(path), channels)

    def stop(self, rec_id: int) -> None:
        self.pool.stop_recording(rec_id)

    def close(self) -> None:
        pass  # a worker finishes its files when it shuts down
