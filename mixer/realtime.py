"""Real-time scheduling of the mixing threads, as audio servers (JACK, PipeWire) schedule theirs.

On a shared machine an ordinary (SCHED_OTHER) thread is time-sliced with every other runnable process: a
tick that needs 8 ms of CPU then takes 15-30 ms of wall time whenever the cores are busy. A SCHED_FIFO thread
runs as soon as it wakes and until it sleeps again, ahead of every ordinary thread. The mix threads sleep most
of each period, so they take no more of the machine than before; the kernel's real-time throttling
(``/proc/sys/kernel/sched_rt_runtime_us``) still keeps 5 % of every second for ordinary threads.

Changing the policy needs CAP_SYS_NICE (root) or an RLIMIT_RTPRIO; without it the thread goes on as an
ordinary one and a warning says so, once per thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import structlog
from pydantic import BaseModel, ConfigDict, Field

log = structlog.get_logger("bargein.mixer")


class RealtimePolicy(BaseModel):
    """How the mixing threads are scheduled: ``priority`` 0 leaves them ordinary threads, 1..99 is SCHED_FIFO at
    that priority; ``cpus`` pins mixing thread ``i`` to ``cpus[i % len(cpus)]`` (empty: no pinning)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    priority: int = Field(0, ge=0, le=99, description="SCHED_FIFO priority of the mixing threads (0: off)")
    cpus: tuple[int, ...] = Field((), description="CPUs the mixing threads are pinned to, one each in turn")

    @property
    def enabled(self) -> bool:
        return self.priority > 0 or bool(self.cpus)


OFF = RealtimePolicy()


def make_current_thread_realtime(policy: RealtimePolicy, index: int = 0) -> bool:
    """Apply ``policy`` to the calling thread (mixing thread number ``index``). Returns whether the thread now
    runs under SCHED_FIFO; a refusal is logged as a warning and the thread goes on as it was."""
    name = threading.current_thread().name
    if policy.cpus:
        _pin(policy.cpus, index, name)
    if policy.priority <= 0:
        return False
    if not hasattr(os, "sched_setscheduler"):
        log.warning("mixer.realtime_unavailable", thread=name, reason="no sched_setscheduler on this platform")
        return False
    try:
        # pid 0 is the calling thread: on Linux the policy belongs to a thread, not to the process
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(policy.priority))
    except OSError as exc:  # EPERM without CAP_SYS_NICE / RLIMIT_RTPRIO; EINVAL past the allowed maximum
        log.warning("mixer.realtime_refused", thread=name, priority=policy.priority, error=str(exc),
                    hint="run as root, give the process CAP_SYS_NICE, or raise RLIMIT_RTPRIO (ulimit -r)")
        return False
    log.info("mixer.realtime", thread=name, priority=policy.priority)
    return True


def is_realtime() -> bool:
    """Whether the calling thread runs under SCHED_FIFO."""
    return hasattr(os, "sched_getscheduler") and os.sched_getscheduler(0) == os.SCHED_FIFO


def _pin(cpus: Sequence[int], index: int, name: str) -> None:
    cpu = cpus[index % len(cpus)]
    try:
        os.sched_setaffinity(0, {cpu})
    except (OSError, ValueError) as exc:  # no such CPU, or outside the process's cpuset
        log.warning("mixer.pin_refused", thread=name, cpu=cpu, error=str(exc))
