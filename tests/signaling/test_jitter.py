"""The adaptive inbound buffer on synthetic arrival patterns (virtual time, no sockets).

Each frame carries its number in every sample, so what comes out says which frame it was
(0 = concealment; fades touch only the first 2.5 ms, so the last sample is checked)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from bargein.signaling.jitter import AdaptiveJitterBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

N = 960
P = 0.02


def frame(k: int) -> np.ndarray:
    return np.full(N, k, np.int16)


def run(arrivals: dict[int, float], ticks: int, *, tick_phase: float = 0.0137, mixer_rate: float = 1.0,
        buf: AdaptiveJitterBuffer | None = None) -> tuple[AdaptiveJitterBuffer, list[tuple[float, int]]]:
    """Deliver frames at their arrival times and pull once per tick; returns (buffer, [(tick time, frame)])."""
    buf = buf or AdaptiveJitterBuffer(N)
    events = sorted((t, k) for k, t in arrivals.items())
    out: list[tuple[float, int]] = []
    i = 0
    for n in range(ticks):
        now = tick_phase + n * P * mixer_rate
        while i < len(events) and events[i][0] <= now:
            t, k = events[i]
            buf.put(k, frame(k), t)
            i += 1
        pcm = buf.pop(now)
        out.append((now, -1 if pcm is None else int(pcm[-1])))
    return buf, out


def played(out: list[tuple[float, int]]) -> list[int]:
    return [k for _, k in out if k > 0]


def delays(out: list[tuple[float, int]], arrivals: dict[int, float], sent: dict[int, float]) -> list[float]:
    """Mouth-to-mixer delay of each played frame: tick time minus the time it was sent."""
    return [now - sent[k] for now, k in out if k > 0]


def steady(n: int, start: float = 0.0, skew: float = 1.0, transit: float = 0.005) -> tuple[dict, dict]:
    sent = {k: start + (k - 1) * P * skew for k in range(1, n + 1)}
    return {k: t + transit for k, t in sent.items()}, sent


def test_steady_stream_plays_every_frame_in_order_with_at_most_one_frame_held() -> None:
    arrivals, sent = steady(500)
    buf, out = run(arrivals, 505)
    assert played(out) == list(range(1, 501))[: len(played(out))]
    assert len(played(out)) >= 495
    d = delays(out, arrivals, sent)
    assert max(d) - min(d) < 1e-9  # constant delay
    assert d[0] < 0.005 + P + 1e-9  # transit plus at most one tick of alignment


def test_stall_is_waited_out_then_the_delay_is_given_back() -> None:
    arrivals, sent = steady(1000)
    # a 200 ms stall at frame 100: frames 100..110 arrive together at the end of it
    for k in range(100, 111):
        arrivals[k] = arrivals[110]
    buf, out = run(arrivals, 1010)
    p = played(out)
    assert p == sorted(p) and len(set(p)) == len(p)
    s = buf.stats
    assert s.late <= 5 and s.played + s.shrunk + s.skipped + s.late == s.received  # little came too late ...
    assert buf.stats.concealed >= 9  # ... the stall was bridged by concealment
    d = delays(out, arrivals, sent)
    assert 0.1 < max(d) - d[0] <= buf.max_delay + P  # the delay it cost ...
    assert d[-1] - d[0] < 1e-9  # ... was all given back
    assert buf.stats.shrunk >= 5


def test_jitter_raises_the_delay_then_it_returns_to_target() -> None:
    """10 s of up to 50 ms jitter, then a clean network: the delay follows up, then comes back down."""
    rng = random.Random(3)
    arrivals, sent = steady(2000)
    for k in range(300, 800):
        arrivals[k] += rng.uniform(0, 0.05)
    buf, out = run(arrivals, 2010)
    p = played(out)
    assert p == sorted(p) and len(set(p)) == len(p)
    d = dict(zip(p, delays(out, arrivals, sent), strict=True))
    before, during, after = d[250], np.median([d[k] for k in range(600, 800) if k in d]), d[max(p)]
    assert during > before + 0.03  # the buffer grew to cover the jitter ...
    late_in_jitter = sum(1 for k in range(600, 800) if k not in d)
    assert late_in_jitter <= 10  # ... so that, once it had learnt it, few frames came too late
    assert after <= before + P  # ... and gave the delay back afterwards
    assert buf.stats.shrunk >= 2
    assert buf.stats.depth <= 2


@pytest.mark.parametrize("skew", [1.001, 0.999])
def test_clock_skew_never_creeps(skew: float) -> None:
    """Sender clock 0.1 % fast or slow against the mixer over 5 minutes."""
    n = 15000
    arrivals, sent = steady(n, skew=skew)
    buf, out = run(arrivals, int(n * skew) - 10)
    p = played(out)
    assert p == sorted(p) and len(set(p)) == len(p)
    d = delays(out, arrivals, sent)
    first = np.median(d[: 3000])
    last = np.median(d[-3000:])
    assert abs(last - first) <= P  # within one frame
    s = buf.stats
    if skew > 1:  # sender slower: the mixer must invent about 0.1 % of frames
        assert 0 < s.concealed <= 0.002 * n
    else:  # sender faster: about 0.1 % of frames are dropped to stay at target
        assert 0 < s.shrunk <= 0.002 * n
        assert s.concealed <= 2


def test_lost_frames_are_concealed_and_counted_and_leave_no_delay() -> None:
    arrivals, sent = steady(1000)
    lost = {200, 201, 450, 700, 701, 702}
    for k in lost:
        del arrivals[k]
    buf, out = run(arrivals, 1005)
    p = played(out)
    assert set(p).isdisjoint(lost) and p == sorted(p)
    last = max(i for i, (_, k) in enumerate(out) if k > 0)
    gaps = sum(1 for _, k in out[:last] if k == 0)
    # a lost frame is waited for one tick (it might be late), then its slot is concealed
    assert len(lost) <= gaps <= 2 * len(lost)
    assert buf.stats.concealed == sum(1 for _, k in out if k == 0)  # (the rest: after the stream ended)
    d = delays(out, arrivals, sent)
    # waiting costs as many frames as the longest run of losses, and it is given back
    assert max(d) - min(d) <= 3 * P + 1e-9 and d[-1] - d[0] < 1e-9


def test_concealment_fades_out_then_silence_and_audio_fades_back_in() -> None:
    buf = AdaptiveJitterBuffer(N)
    buf.put(1, np.full(N, 1000, np.int16), 0.0)
    assert buf.pop(0.001)[-1] == 1000
    gap = buf.pop(0.021)
    assert gap[0] == 1000 and gap[-1] == 0 and np.all(np.diff(gap) <= 0)  # fade from the last frame
    assert not buf.pop(0.041).any()  # then silence
    buf.put(4, np.full(N, 1000, np.int16), 0.05)
    pulls = [buf.pop(0.061 + i * P) for i in range(3)]  # frames 2 and 3 are given up, then 4 plays
    back = next(x for x in pulls if x[-1] == 1000)
    assert back[0] == 0  # fade-in after the gap
    assert buf.stats.concealed >= 2


def test_reordered_and_duplicate_frames_never_play_out_of_order() -> None:
    arrivals, sent = steady(300)
    rng = random.Random(7)
    for k in range(2, 300, 10):  # swap pairs in arrival
        arrivals[k], arrivals[k + 1] = arrivals[k + 1], arrivals[k]
    buf = AdaptiveJitterBuffer(N)
    events = sorted((t, k) for k, t in arrivals.items())
    events += [(t + rng.uniform(0, 0.05), k) for t, k in events[::7]]  # duplicates, some late
    events.sort()
    got = []
    i = 0
    for n in range(320):
        now = 0.0137 + n * P
        while i < len(events) and events[i][0] <= now:
            buf.put(events[i][1], frame(events[i][1]), events[i][0])
            i += 1
        pcm = buf.pop(now)
        if pcm is not None and pcm[-1] > 0:
            got.append(int(pcm[-1]))
    assert got == sorted(got) and len(set(got)) == len(got)
    assert buf.stats.late > 0


def test_sender_timeline_jump_resyncs() -> None:
    buf = AdaptiveJitterBuffer(N)
    for k in range(1, 50):
        buf.put(k, frame(k), k * P)
        buf.pop(k * P + 0.001)
    buf.put(5000, frame(5000 % 30000), 50 * P)  # the sender restarted its timestamps elsewhere
    assert buf.pop(50 * P + 0.001)[-1] == 5000 % 30000
    assert buf.stats.resyncs == 1


def test_bounded_when_nobody_pulls() -> None:
    buf = AdaptiveJitterBuffer(N, capacity=10)
    for k in range(1, 40):
        buf.put(k, frame(k), k * P)
    assert buf.depth <= 10
    assert buf.stats.overflow + buf.stats.resyncs > 0


def test_quietest_frame_is_the_one_dropped() -> None:
    # margin chosen so that exactly one frame is spare: the first pull drops one, the next ones must not
    buf = AdaptiveJitterBuffer(N, hold=1, margin_s=0.065, window=1)
    frames = {k: np.full(N, 3000 + k, np.int16) for k in range(1, 7)}
    frames[4] = np.full(N, 4, np.int16)  # a near-silent frame
    for k, pcm in frames.items():
        buf.put(k, pcm, 0.0)  # six frames at once: far more delay than the jitter needs
    heard = []
    for i in range(6):
        pcm = buf.pop(0.001 + i * P)
        heard.append(int(pcm[-1]))
    assert buf.stats.shrunk == 1
    assert heard == [3001, 3002, 3003, 3005, 3006, 0]  # the quiet frame went, and only it


@settings(max_examples=60, deadline=None)
@given(
    jitter_ms=st.floats(0, 40),
    loss=st.floats(0, 0.1),
    skew=st.sampled_from([0.999, 1.0, 1.001]),
    burst_at=st.integers(50, 400),
    burst_len=st.integers(0, 15),
    seed=st.integers(0, 2**16),
)
def test_any_pattern_in_order_bounded_and_back_to_target(jitter_ms: float, loss: float, skew: float,
                                                         burst_at: int, burst_len: int, seed: int) -> None:
    rng = random.Random(seed)
    n = 1500
    sent = {k: (k - 1) * P * skew for k in range(1, n + 1)}
    arrivals = {k: t + 0.003 + rng.uniform(0, jitter_ms / 1000) for k, t in sent.items() if rng.random() >= loss}
    for k in range(burst_at, burst_at + burst_len):  # a stall releases a burst
        if k in arrivals:
            arrivals[k] = max(arrivals[k], sent[burst_at + burst_len] + 0.003)
    buf, out = run(arrivals, int(n * skew) - 5)
    p = played(out)
    assert p == sorted(p) and len(set(p)) == len(p), "out of order or repeated"
    s = buf.stats
    pulls = sum(1 for _, k in out if k != -1)
    assert s.played + s.concealed == pulls  # every pull is either a real frame or counted concealment
    assert s.played == len(p)
    assert s.depth <= buf.capacity
    # after the burst and 10 s of the pattern, the delay is back within jitter + two frames of the sender
    d = delays(out, arrivals, sent)
    assert np.median(d[-100:]) <= 0.003 + jitter_ms / 1000 + 2 * P + buf.margin + 1e-6


def test_stale_frames_are_discarded_but_a_restarted_sender_is_followed() -> None:
    buf = AdaptiveJitterBuffer(N)
    for k in range(1, 101):
        buf.put(k, frame(k), k * P)
        assert buf.pop(k * P + 0.001)[-1] == k
    for k in range(10, 40):  # stale copies turn up after a stall: discarded, no restart
        buf.put(k, frame(k), 100 * P + 0.002)
    assert buf.stats.resyncs == 0 and buf.stats.late == 30
    t, heard = 100 * P, []
    for i in range(60):  # the sender restarted its timestamps at 1 and keeps going
        t += P
        buf.put(1 + i, frame(500 + i), t)
        heard.append(int(buf.pop(t + 0.001)[-1]))
    assert buf.stats.resyncs == 1
    assert heard[-1] == 559 and heard[-10:] == sorted(heard[-10:])


def test_after_skipped_ticks_the_excess_goes_at_once() -> None:
    """The clock skips ticks after a long stop: the frames of those ticks are still buffered, far more than
    the jitter needs; the oldest go at once and the delay is what it was."""
    arrivals, sent = steady(600)
    buf = AdaptiveJitterBuffer(N)
    events = sorted((t, k) for k, t in arrivals.items())
    out, i = [], 0
    for n in range(600):
        now = 0.0137 + n * P
        while i < len(events) and events[i][0] <= now:
            buf.put(events[i][1], frame(events[i][1]), events[i][0])
            i += 1
        if 200 <= n < 230:  # these ticks never ran
            continue
        pcm = buf.pop(now)
        out.append((now, int(pcm[-1])))
    d = delays(out, arrivals, sent)
    assert max(d) - min(d) <= P + 1e-9  # the first pull after the gap plays within a frame of the old delay
    assert buf.stats.skipped >= 25


@pytest.mark.parametrize("stall", [0.06, 0.3])
def test_our_own_stalls_do_not_raise_the_delay(stall: float) -> None:
    """The whole process stops (ticks and packet reading alike), then drains what queued up: catch-up
    ticks first (or skipped ones, past 5), packets 1 ms apart. Buffering cannot hide that, so it must
    not leave the delay raised."""
    stalls = [10.0, 20.0]

    def free_at(t: float) -> float:
        return next((s + stall for s in stalls if s <= t < s + stall), t)

    arrivals, sent = steady(1500)
    last = 0.0
    for k in sorted(arrivals):  # packets queued by a stall are read one by one after it
        t = free_at(arrivals[k])
        last = arrivals[k] = max(t, last + 0.001) if t != arrivals[k] else t
    buf = AdaptiveJitterBuffer(N)
    events = [(t, 1, k) for k, t in arrivals.items()]
    n, prev = 0, 0.0
    while 0.0137 + n * P < 29.9:
        due = 0.0137 + n * P
        now = max(free_at(due), prev)
        if (now - due) / P > 5:  # the clock skips what it cannot catch up
            n += int((now - due) / P)
        events.append((now, 0, n))
        prev, n = now + 0.0002, n + 1
    out = []
    for t, kind, x in sorted(events):
        if kind:
            buf.put(x, frame(x), t)
        elif (pcm := buf.pop(t)) is not None:
            out.append((t, int(pcm[-1])))
    p = played(out)
    assert p == sorted(p) and len(set(p)) == len(p)
    by_frame = dict(zip(p, delays(out, arrivals, sent), strict=True))
    before = np.median([by_frame[k] for k in range(300, 480) if k in by_frame])
    after = [by_frame[k] for k in range(int(10.5 / P), int(19.5 / P)) if k in by_frame]
    assert np.median(after) <= before + P  # back to where it was well within 0.5 s of each stall
    assert np.median([d for k, d in by_frame.items() if k > 21 / P]) <= before + P


def test_delay_is_capped_when_the_sender_stalls_for_a_second_at_a_time() -> None:
    """A sender that stops for a second, then sends everything at once, every few seconds: the buffer
    does not follow it to a second of delay; it stays within max_delay of the fastest frames."""
    arrivals, sent = steady(3000)
    for start in range(200, 2800, 250):
        for k in range(start, start + 50):
            arrivals[k] = arrivals[start + 50]
    buf, out = run(arrivals, 3010)
    p = played(out)
    assert p == sorted(p) and len(set(p)) == len(p)
    d = delays(out, arrivals, sent)
    assert max(d) <= 0.005 + buf.max_delay + 2 * P + buf.margin
    assert buf.stats.concealed > 0  # what came later than that was concealed


def test_playout_ahead_of_the_sender_follows_it_again() -> None:
    """The sender stepped its timestamps back by 20 frames (more than max_delay, fewer than a resync's
    worth): every frame now comes 'late'. After resync_after of that the buffer follows the sender
    instead of staying silent."""
    buf = AdaptiveJitterBuffer(N)
    heard = []
    for n in range(400):
        now = 0.0137 + n * P
        k = n + 1 if n < 50 else n + 1 - 20
        buf.put(k, frame(k), now - 0.005)
        heard.append(int(buf.pop(now)[-1]))
    assert buf.stats.resyncs == 1
    assert all(x > 0 for x in heard[-250:])  # audio again, not silence forever
    assert heard[-250:] == sorted(heard[-250:])


@given(st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=1, max_size=300), st.floats(0.0, 1.0))
def test_late_edge_quantile_is_numpys(values: list[float], q: float) -> None:
    """The buffer's own quantile (no numpy call per pull) gives numpy's linear-interpolation answer."""
    from collections import deque

    from bargein.signaling.jitter import quantile

    assert quantile(deque(values), q) == pytest.approx(float(np.quantile(values, q)), abs=1e-12)
