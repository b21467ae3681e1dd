"""Clocks: drift-free real-time schedule (checked on a fake monotonic clock) and the virtual clock."""

import asyncio

import pytest
from bargein.mixer import RealtimeClock, VirtualClock


class FakeTime:
    """A monotonic clock that only moves when slept on or when a tick 'computes'."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.now += delay
        await asyncio.sleep(0)


async def test_ticks_are_scheduled_against_start_plus_n_periods() -> None:
    fake = FakeTime()
    starts: list[float] = []
    work = {3: 0.035, 7: 0.001}  # tick 3 overruns its 20 ms by 15 ms

    def on_tick() -> None:
        starts.append(fake.now)
        fake.now += work.get(len(starts) - 1, 0.002)

    clock = RealtimeClock(on_tick, time_fn=fake, sleep_fn=fake.sleep)
    await clock.run(duration_s=0.2)
    offsets = [round((s - 1000.0) * 1000, 6) for s in starts]
    # tick 3 runs 60..95 ms, so tick 4 (due at 80 ms) starts at 95 ms; tick 5 is due at 100 ms as planned
    assert offsets[:4] == [0.0, 20.0, 40.0, 60.0]
    assert offsets[4] == pytest.approx(95.0)
    assert offsets[5:] == [100.0, 120.0, 140.0, 160.0, 180.0]  # back on the original grid: no drift
    assert clock.stats.ticks == 10
    assert clock.stats.deadline_misses == 1  # tick 3 overran; tick 4 (15 ms late + 2 ms) still met its deadline
    late = [s.lateness_ms for s in clock.stats.recent]
    assert late[4] == pytest.approx(15.0)
    assert all(x == 0 for i, x in enumerate(late) if i != 4)


async def test_long_stall_skips_and_counts_instead_of_bursting() -> None:
    fake = FakeTime()
    calls = []

    def on_tick() -> None:
        calls.append(fake.now)
        if len(calls) == 2:
            fake.now += 0.5  # the process was stopped for half a second

    clock = RealtimeClock(on_tick, time_fn=fake, sleep_fn=fake.sleep, max_catch_up=5)
    await clock.run(duration_s=1.0)
    assert clock.skipped > 0
    assert clock.stats.ticks + clock.skipped == 50
    assert len(calls) < 50


async def test_listeners_and_wait_tick_see_every_tick() -> None:
    seen: list[int] = []
    clock = RealtimeClock(lambda: None)
    clock.add_listener(lambda s: seen.append(s.index))
    clock.start()
    first = await asyncio.wait_for(clock.wait_tick(), 5)
    second = await asyncio.wait_for(clock.wait_tick(), 5)
    await clock.stop()
    assert second == first + 1
    assert seen == list(range(len(seen))) and len(seen) >= 2


def test_virtual_clock_ticks_as_driven() -> None:
    n = []
    clock = VirtualClock(lambda: n.append(1))
    last = clock.advance(250)
    assert len(n) == 250 and clock.ticks == 250
    assert clock.now_s == pytest.approx(5.0)
    assert last is not None and last.index == 249 and not last.missed


def test_feeders_run_right_before_each_tick_in_order() -> None:
    order: list[str] = []
    clock = VirtualClock(lambda: order.append("tick"))
    clock.add_feeder(lambda i: order.append(f"feed{i}"))
    clock.add_listener(lambda s: order.append("after"))
    clock.advance(2)
    assert order == ["feed0", "tick", "after", "feed1", "tick", "after"]
