"""The offloaded clock keeps time in a thread of its own: ticks there, feeders and listeners on the loop in
order, errors reach run()'s caller, a stuck loop shows as waiting (not as compute), and real-time scheduling
is applied when permitted and refused with a warning (the thread goes on) when not."""

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from bargein.mixer import LegRouting, MixerEngine, RealtimeClock, RealtimePolicy, Role
from bargein.mixer.realtime import is_realtime, make_current_thread_realtime

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="SCHED_FIFO needs root (CAP_SYS_NICE)")


@pytest.mark.parametrize("timing", ["thread", "loop"])
async def test_ticks_run_in_the_clock_thread_between_feeders_and_listeners_on_the_loop(timing: str) -> None:
    loop_thread = threading.get_ident()
    order: list[str] = []
    where: dict[str, set[int]] = {"tick": set(), "feed": set(), "after": set()}

    def on_tick() -> None:
        where["tick"].add(threading.get_ident())
        order.append(f"tick{clock.tick_index}")

    def feed(i: int) -> None:
        where["feed"].add(threading.get_ident())
        order.append(f"feed{i}")

    def after(s: object) -> None:
        where["after"].add(threading.get_ident())
        order.append(f"after{s.index}")  # type: ignore[attr-defined]

    clock = RealtimeClock(on_tick, offload=True, timing=timing)  # type: ignore[arg-type]
    clock.add_feeder(feed)
    clock.add_listener(after)
    await clock.run(duration_s=0.1)
    # every tick that ran (a stalled machine may skip some: counted, never run late in a burst) is its feeders,
    # then its mix, then its listeners, before the next one starts
    ran = [int(o[4:]) for o in order if o.startswith("tick")]
    assert ran == sorted(set(ran)) and len(ran) + clock.skipped == 5
    assert order == [x for i in ran for x in (f"feed{i}", f"tick{i}", f"after{i}")]
    assert where["feed"] == where["after"] == {loop_thread}
    assert len(where["tick"]) == 1 and loop_thread not in where["tick"]
    assert clock.stats.ticks == len(ran)
    assert all(t.cpu_ms >= 0 for t in clock.stats.recent)


async def test_a_tick_waits_until_the_last_ticks_listeners_ran_and_says_it_waited_for_the_loop() -> None:
    """A listener that holds the loop for 60 ms (3 periods) delays the next tick: it must not overwrite outputs
    nobody has read. The delay is counted as waiting for the loop, not as the tick's compute or a late timer."""
    started: list[float] = []

    def on_tick() -> None:
        started.append(time.monotonic())

    def listener(s: object) -> None:
        if s.index == 0:  # type: ignore[attr-defined]
            time.sleep(0.06)  # blocks the event loop

    clock = RealtimeClock(on_tick, offload=True, max_catch_up=10)
    clock.add_listener(listener)
    await clock.run(duration_s=0.1)
    ticks = list(clock.stats.recent)
    assert started[1] - started[0] >= 0.06
    assert ticks[1].missed and ticks[1].wait_ms >= 0.04 * 1000 - 1
    assert ticks[1].lateness_ms >= ticks[1].wait_ms
    assert ticks[1].wait_ms > ticks[1].compute_ms


async def test_a_slept_tick_shows_compute_without_cpu() -> None:
    clock = RealtimeClock(lambda: time.sleep(0.03), offload=True)
    await clock.run(duration_s=0.04)
    first = clock.stats.recent[0]
    assert first.missed and first.compute_ms >= 30
    assert first.cpu_ms < first.compute_ms / 2  # it slept: a long tick that did not compute


async def test_an_error_in_a_tick_or_a_feeder_ends_the_run_with_it() -> None:
    def boom() -> None:
        raise ZeroDivisionError("in the tick")

    with pytest.raises(ZeroDivisionError, match="in the tick"):
        await RealtimeClock(boom, offload=True).run(duration_s=0.2)

    clock = RealtimeClock(lambda: None, offload=True)

    def bad_feeder(i: int) -> None:
        if i == 2:
            raise KeyError("feeder")

    clock.add_feeder(bad_feeder)
    with pytest.raises(KeyError, match="feeder"):
        await asyncio.wait_for(clock.run(duration_s=1.0), 5)
    assert clock.stats.ticks == 2


async def test_stop_ends_the_clock_thread() -> None:
    clock = RealtimeClock(lambda: None, offload=True)
    clock.start()
    await asyncio.wait_for(clock.wait_tick(), 5)
    await clock.stop()
    assert not any(t.name == "bargein-clock" for t in threading.enumerate())


@needs_root
async def test_realtime_policy_runs_the_clock_thread_and_the_mix_workers_under_sched_fifo() -> None:
    policy = RealtimePolicy(priority=10)
    engine = MixerEngine(rate=8000, kernel="c", threads=2, realtime=policy)
    for call in range(300):  # enough calls for the pool to be split over both threads
        engine.add_leg(call, LegRouting(Role.AGENT))
        engine.add_leg(call, LegRouting(Role.CUSTOMER))
    seen: list[bool] = []

    def on_tick() -> None:
        seen.append(is_realtime())
        engine.tick()

    clock = RealtimeClock(on_tick, offload=True, realtime=policy)
    await clock.run(duration_s=0.06)
    assert seen == [True, True, True] and clock.realtime_granted
    looped = RealtimeClock(on_tick, offload=True, realtime=policy, timing="loop")
    await looped.run(duration_s=0.06)
    assert seen[3:] == [True, True, True] and looped.realtime_granted
    assert not is_realtime()  # the loop's thread is left as it was
    assert engine.realtime_workers == 1
    workers = [t for t in threading.enumerate() if t.name.startswith("bargein-mix")]
    assert len(workers) == 1 and os.sched_getscheduler(workers[0].native_id) == os.SCHED_FIFO


@needs_root
def test_pinning_puts_the_thread_on_the_given_cpu() -> None:
    cpu = max(os.sched_getaffinity(0))
    out: list[set[int]] = []

    def pinned() -> None:
        make_current_thread_realtime(RealtimePolicy(cpus=(cpu,)))
        out.append(os.sched_getaffinity(0))

    t = threading.Thread(target=pinned)
    t.start()
    t.join()
    assert out == [{cpu}]
    assert os.sched_getaffinity(0) != {cpu} or len(os.sched_getaffinity(0)) == 1  # only that thread was pinned


REFUSED = textwrap.dedent("""
    import asyncio, json, structlog
    from bargein.mixer import RealtimeClock, RealtimePolicy
    from bargein.mixer.realtime import is_realtime
    seen = []
    clock = RealtimeClock(lambda: seen.append(is_realtime()), offload=True, realtime=RealtimePolicy(priority=10))
    with structlog.testing.capture_logs() as logs:
        asyncio.run(clock.run(duration_s=0.06))
    print(json.dumps({"ticks": clock.stats.ticks, "granted": clock.realtime_granted, "seen": seen,
                      "warnings": [e["event"] for e in logs if e["log_level"] == "warning"]}))
""")


def _no_rt_rlimit() -> None:
    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))


def test_without_the_permission_the_clock_warns_and_ticks_as_an_ordinary_thread() -> None:
    """A real refusal: the clock runs in a process without CAP_SYS_NICE (dropped with setpriv when root) and with
    an RLIMIT_RTPRIO of 0."""
    prefix = ["setpriv", "--bounding-set", "-sys_nice", "--inh-caps", "-sys_nice"] if ROOT else []
    if prefix and shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop CAP_SYS_NICE as root")
    done = subprocess.run([*prefix, sys.executable, "-c", REFUSED], capture_output=True, text=True, timeout=60,
                          preexec_fn=_no_rt_rlimit)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"ticks": 3, "granted": False, "seen": [False, False, False],
                   "warnings": ["mixer.realtime_refused"]}


def _calls(engine: MixerEngine, calls: int) -> list[int]:
    return [engine.add_leg(c, LegRouting(r)) for c in range(calls) for r in (Role.CUSTOMER, Role.AGENT, Role.PARTY)]


def test_a_worker_that_does_not_start_leaves_its_share_to_the_others() -> None:
    """The only worker thread is held busy, as if its CPU were taken away: the tick must still finish, the
    calling thread mixing every chunk, and equal a one-thread tick. Without the shared chunk queue the tick
    waited for the worker's half."""
    rng = np.random.default_rng(5)
    frames = rng.integers(-20000, 20000, (3 * 500, 160), dtype=np.int16)
    one = MixerEngine(rate=8000, kernel="c", threads=1)
    two = MixerEngine(rate=8000, kernel="c", threads=2)
    legs = _calls(one, 500)
    assert _calls(two, 500) == legs
    one.tick(legs, frames)
    held, release = threading.Event(), threading.Event()
    assert two._workers is not None
    blocker = two._workers.submit(lambda: (held.set(), release.wait(60)))
    assert held.wait(60)
    ticked = threading.Thread(target=two.tick, args=(legs, frames))
    ticked.start()
    ticked.join(60)
    finished_while_held = not ticked.is_alive()
    release.set()
    ticked.join()
    blocker.result()
    assert finished_while_held
    np.testing.assert_array_equal(two.outputs(legs), one.outputs(legs))
    (caller,) = two.last_split
    assert caller.chunks == len(two._tick_chunks()[0]) > 1
    one.tick(legs, frames[::-1].copy())  # the late worker's stale job found nothing to do and broke nothing
    two.tick(legs, frames[::-1].copy())
    np.testing.assert_array_equal(two.outputs(legs), one.outputs(legs))
    assert sum(s.chunks for s in two.last_split) <= len(two._tick_chunks()[0])
