"""The adaptive buffer in C (jitter_fast.FastJitterBuffer) against its Python reference (jitter.AdaptiveJitterBuffer):
the same arrivals and pulls into both, and every frame out, every counter and the buffered depth compared after
each step. The patterns cover what the buffer decides on: jitter, bursts, losses, reordering, duplicates,
sender stalls and jumps, clock skew, our own stalled and skipped ticks, loud and quiet frames (which one is
dropped to shrink) and the fades around gaps."""

from __future__ import annotations

import time

import numpy as np
import pytest
from bargein.signaling import jitter_fast
from bargein.signaling.jitter import INBOUND_COUNTERS, AdaptiveJitterBuffer
from bargein.signaling.opus_inbound import OpusInbound
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.skipif(not jitter_fast.available(), reason="the C adaptive buffer was not built")

N, P = 960, 0.02


def frames_for(seed: int, count: int) -> np.ndarray:
    """Frame k: noise at a level of its own (so shrinking has a quietest frame to find) with k in its last
    sample (so the output says which frame played)."""
    rng = np.random.default_rng(seed)
    levels = rng.integers(0, 20000, count)
    f = (rng.standard_normal((count, N)) * levels[:, None]).clip(-32768, 32767).astype(np.int16)
    f[:, -1] = np.arange(count)
    return f


def both_agree(events: list[tuple[str, float, int]], frames: np.ndarray, **config: float) -> AdaptiveJitterBuffer:
    """Apply ``events`` (``("put", time, number)`` / ``("pop", time, 0)``) to both buffers, comparing as it goes."""
    ref = AdaptiveJitterBuffer(N, **config)  # type: ignore[arg-type]
    fast = jitter_fast.FastJitterBuffer(N, **config)  # type: ignore[arg-type]
    for i, (kind, t, number) in enumerate(events):
        if kind == "put":
            pcm = frames[number % len(frames)]
            ref.put(number, pcm, t)
            fast.put(number, pcm, t)
        else:
            a, b = ref.pop(t), fast.pop(t)
            assert (a is None) == (b is None), f"event {i}: pop at {t}"
            if a is not None:
                np.testing.assert_array_equal(a, b, err_msg=f"event {i}: pop at {t}")
        for k in INBOUND_COUNTERS:
            assert getattr(ref, k) == getattr(fast, k), f"event {i} ({kind} {number} at {t}): {k}"
        assert ref.depth == fast.depth, f"event {i}: depth"
    assert ref.stats == fast.stats
    return ref


@st.composite
def scenarios(draw: st.DrawFn) -> list[tuple[str, float, int]]:
    """A sender's frames with network delays, losses, reordering, duplicates, stalls and timeline jumps, and
    the mixer's pulls with skew, stalls and catch-ups, merged in time order."""
    count = draw(st.integers(20, 400))
    jitter = draw(st.sampled_from([0.0, 0.002, 0.01, 0.03, 0.08]))
    loss = draw(st.sampled_from([0.0, 0.02, 0.2]))
    skew = draw(st.sampled_from([1.0, 0.999, 1.001, 0.98]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    events: list[tuple[str, float, int]] = []
    number, t_send = draw(st.integers(-5, 100_000)), 0.0
    for _ in range(count):
        r = rng.random()
        if r < 0.01:  # the sender jumps on its timeline (a restart), ahead or back
            number += int(rng.choice([-400, -30, 60, 1000]))
        elif r < 0.03:  # the sender or the network stalls: what follows comes in a burst
            t_send += rng.uniform(0.05, 1.5)
        number += 1
        t_send += P * skew
        if rng.random() < loss:
            continue
        arrival = t_send + 0.005 + abs(rng.normal(0, jitter)) if jitter else t_send + 0.005
        events.append(("put", arrival, number))
        if rng.random() < 0.02:  # a duplicate
            events.append(("put", arrival + rng.uniform(0, 0.05), number))
    end = max(t for _, t, _ in events) + 0.5 if events else 1.0
    t = draw(st.floats(0.0, 0.02))
    while t < end:
        events.append(("pop", t, 0))
        r = rng.random()
        if r < 0.01:  # our tick stalled ...
            stall = rng.uniform(0.03, 0.3)
            t += stall
            for _ in range(int(stall / P)):  # ... and the clock catches up with quick ticks
                events.append(("pop", t, 0))
                t += 0.0005
        t += P
    events.sort(key=lambda e: (e[1], e[0] == "pop"))
    return events


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.integers(0, 1000))
def test_c_buffer_decides_as_the_python_one(events: list[tuple[str, float, int]], seed: int) -> None:
    both_agree(events, frames_for(seed, 97))


@settings(max_examples=40, deadline=None)
@given(scenarios(), st.sampled_from([dict(capacity=4, window=3, hold=1), dict(max_delay_s=0.06, jump_frames=2),
                                     dict(margin_s=0.0, quantile=0.5, max_grow_frames=1, resync_frames=3)]))
def test_c_buffer_decides_as_the_python_one_with_other_settings(events: list, config: dict) -> None:
    both_agree(events, frames_for(7, 31), **config)


def test_a_steady_stream_with_a_stall_shrinks_the_same_frames() -> None:
    """A deterministic case the random ones cover only now and then: a stall, its burst, the delay given
    back by dropping frames (each the quietest of its run) with crossfades."""
    events = [("put", 0.005 + k * P if not 100 <= k <= 110 else 0.005 + 110 * P, k) for k in range(600)]
    events += [("pop", 0.0137 + n * P, 0) for n in range(610)]
    events.sort(key=lambda e: (e[1], e[0] == "pop"))
    ref = both_agree(events, frames_for(3, 53))
    assert ref.shrunk >= 5 and ref.concealed >= 9


def test_the_packet_path_unwraps_and_cuts_as_opus_inbound() -> None:
    """OpusInbound on the C buffer (its packet path: arrival time, timestamp unwrap and one-frame put in C) against
    OpusInbound on the Python buffer, given the same arrival times: the same frames come out, whatever the
    timestamps do (wrap around, a reordered pair, a packet cut in two halves, an empty packet)."""
    arrival = [0.0]
    ref = OpusInbound(AdaptiveJitterBuffer(N), 48000, clock=lambda: arrival[0])
    fast = OpusInbound(jitter_fast.FastJitterBuffer(N), 48000)
    assert fast.fast and not ref.fast
    assert isinstance(fast.buffer, jitter_fast.FastJitterBuffer)

    def both(ts: int, pcm: np.ndarray | None) -> None:
        fast.add_pcm(ts, None if pcm is None else pcm.copy())
        arrival[0] = fast.buffer.last_packet[0]  # the time C read, for the reference
        ref.add_pcm(ts, None if pcm is None else pcm.copy())

    frames = frames_for(11, 40)
    start = 2**32 - 5 * N  # wraps after five packets
    order = list(range(30))
    order[10], order[11] = order[11], order[10]
    for k in order:
        ts = (start + k * N) & 0xFFFFFFFF
        if k == 20:  # half a frame, then the other half: the frame cutter's slow path
            both(ts, frames[k][: N // 2])
            both((ts + N // 2) & 0xFFFFFFFF, frames[k][N // 2:])
        else:
            both(ts, frames[k])
    both((start + 31 * N) & 0xFFFFFFFF, None)
    assert fast.packets == ref.packets == 32 and fast.last_arrival == ref.last_arrival
    assert abs(fast.last_arrival - time.monotonic()) < 60  # C reads time.monotonic()'s clock
    for n in range(40):
        now = arrival[0] + 0.01 + n * P
        a, b = ref.buffer.pop(now), fast.buffer.pop(now)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert ref.buffer.stats == fast.buffer.stats and ref.buffer.received == 30  # the halves made one frame


def test_pop_many_is_each_buffers_pop() -> None:
    bufs = [jitter_fast.FastJitterBuffer(N) for _ in range(3)]
    refs = [jitter_fast.FastJitterBuffer(N) for _ in range(3)]
    frames = frames_for(5, 10)
    for i, (b, r) in enumerate(zip(bufs, refs, strict=True)):
        for k in range(i * 2):  # buffer 0 never gets a frame
            b.put(k, frames[k], 0.001 + k * P)
            r.put(k, frames[k], 0.001 + k * P)
    out, got = np.zeros((3, N), np.int16), np.zeros(3, np.uint8)
    addresses = np.array([b.address for b in bufs], np.int64)
    for n in range(6):
        now = 0.01 + n * P
        expected = [r.pop(now) for r in refs]
        assert jitter_fast.pop_many(addresses, now, out, got) == sum(e is not None for e in expected)
        for i, e in enumerate(expected):
            assert bool(got[i]) == (e is not None)
            if e is not None:
                np.testing.assert_array_equal(out[i], e)


def test_bad_frames_are_refused_with_the_same_error() -> None:
    fast = jitter_fast.FastJitterBuffer(N)
    with pytest.raises(ValueError, match="frame must be int16"):
        fast.put(1, np.zeros(N, np.float32), 0.0)
    with pytest.raises(ValueError, match="frame must be int16"):
        fast.put(1, np.zeros(N + 1, np.int16), 0.0)
    assert fast.received == 0


def test_a_sender_jumping_2_31_ahead_every_packet_cannot_overflow_the_timeline() -> None:
    """Hostile timestamps: each packet half the RTP clock ahead of the last. The C unwrap starts the timeline over
    instead of overflowing int64 (Python's ints would just grow); the buffer goes on restarting and playing."""
    inbound = OpusInbound(jitter_fast.FastJitterBuffer(N), 48000)
    pcm = frames_for(1, 1)[0]
    ts = 0
    for _ in range(100_000):  # far past 2**40 samples of unwrapped position
        ts = (ts + 2**31 - N) & 0xFFFFFFFF
        inbound.add_pcm(ts, pcm.copy())
        assert abs(inbound.jitter_buffer.last_packet[1]) <= 2**40 + 2**31
    assert inbound.packets == 100_000
    assert inbound.buffer.pop(time.monotonic()) is not None
