"""An adaptive inbound buffer for one leg (sans-IO: frames and times in, frames out).

Frames arrive numbered (consecutive 20 ms frames of the sender's timeline) at times the caller
measures; the mixer pulls exactly one frame per tick. The buffer keeps the playout delay just above
what the measured arrival jitter needs, and no more:

* *Relative transit* of a frame is ``arrival - number x period`` (the sender's timeline put on our
  clock, up to an unknown constant). Its 95th percentile over the last 5 s is the *late edge*: when
  frame ``k`` is due at time ``T``, the *playout offset* ``T - k x period`` must stay at or above it.
* A missing head frame is a loss (conceal its slot, go on at the same offset) when newer frames are
  here, or when the late edge says it should be here and the stream is otherwise flowing. While the
  edge says it may still come, or the whole stream has gone quiet (a stall), conceal and wait one
  tick, so the offset grows by one frame, up to ``max_delay_s`` above the fastest recent frames.
  A frame that arrives after its turn raises the delay at once by how late it was (fast attack,
  up to ``max_grow_frames``), slow release below. The delay kept for jitter is capped at
  ``max_delay_s`` above the fastest recent frames: a conversation cannot wait longer than that.
* Too early (the offset would still clear the late edge by ``margin`` after losing a frame, for
  ``hold`` ticks in a row, fewer when there is more to spare): drop the quietest buffered frame,
  with a short crossfade over the cut. With ``jump_frames`` or more to spare (our ticks stalled and
  the backlog arrived at once) the excess oldest frames go at once.
  Latency that a burst, a stall or sender clock skew added is given back; it never creeps.
* Concealment is the last frame faded out, then silence; real audio after a gap fades in.
  (libopus packet-loss concealment is not reachable through PyAV: an empty packet means "flush".)

Everything is counted: frames concealed, dropped to shrink, dropped late or on overflow, resyncs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

# the counters among JitterStats' fields (legs' totals are summed for /healthz and /metrics)
INBOUND_COUNTERS = ("received", "played", "concealed", "shrunk", "skipped", "late", "overflow", "resyncs")


def quantile(values: deque[float], q: float) -> float:
    """``np.quantile(values, q)`` (its default, linear interpolation) without numpy's per-call overhead: a few
    hundred values sorted in C, pulled on every leg every 200 ms."""
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    lo = int(at)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (at - lo)


@dataclass(frozen=True, slots=True)
class JitterStats:
    depth: int  # frames buffered after the last pull
    target_frames: int  # frames the measured jitter asks to keep (late edge rounded up to frames)
    jitter_ms: float  # spread of relative transit over the window
    received: int
    played: int
    concealed: int  # pulls answered with concealment (loss, late arrival, or a gap)
    shrunk: int  # frames dropped to bring the delay back to target
    late: int  # frames that arrived after their turn (discarded)
    overflow: int  # frames dropped because the buffer was full
    resyncs: int  # timeline restarts (sender jumped far ahead or back)
    skipped: int  # frames dropped at once: far more buffered than the jitter needs (after our ticks stalled)


class AdaptiveJitterBuffer:
    """See the module docstring. ``samples``: samples per frame; times are seconds on one clock."""

    def __init__(
        self,
        samples: int,
        *,
        period_s: float = 0.02,
        capacity: int = 50,
        window: int = 250,
        quantile: float = 0.95,
        hold: int = 25,
        margin_s: float = 0.003,
        resync_frames: int = 25,
        resync_after_s: float = 1.0,
        max_grow_frames: int = 10,
        max_delay_s: float = 0.2,
        jump_frames: int = 5,
    ) -> None:
        if samples < 8 or capacity < 2 or window < 1 or hold < 1:
            raise ValueError("samples >= 8, capacity >= 2, window >= 1 and hold >= 1 are required")
        self.samples, self.period = samples, period_s
        self.capacity, self.hold, self.margin = capacity, hold, margin_s
        self.resync_frames, self.resync_after = resync_frames, resync_after_s
        self._behind_since: float | None = None  # first of a run of frames far behind playout
        self._origin: float | None = None  # playout time of frame ``_base`` as of the last pull
        self._last_pop: float | None = None
        self._last_arrival: float | None = None
        self._stalls: deque[float] = deque(maxlen=25)  # how late each of the last pulls came (our stalls)
        self._stall = 0.0  # the longest of them
        self._catching_up = False  # this pull came right after another: the clock catches up after a stall
        self._grow = 0  # frames of delay still to add (fast attack after a late arrival)
        self.max_grow = max_grow_frames
        self._frames: dict[int, np.ndarray] = {}
        self._transit: deque[float] = deque(maxlen=window)
        self.quantile = quantile
        self._edge: float | None = None  # the late edge: a high quantile of recent transit (refreshed)
        self._edge_age = 0
        self._low: deque[tuple[int, float]] = deque()  # ... and minimum
        self.max_delay = max_delay_s
        self.jump_frames = jump_frames
        self._seen = 0
        self._base = 0  # frame number that maps to transit 0 (keeps floats small)
        self._next: int | None = None  # number of the next frame to play
        self._early = 0  # consecutive pulls with a whole frame of spare delay
        self._skip: dict[int, np.ndarray] = {}  # dropped frame -> its head, to crossfade into the next one
        self._last: np.ndarray | None = None  # last real frame played
        self._gap = False  # the previous pull was concealment
        self._ramp = min(samples, max(8, samples // 8))  # 2.5 ms fades
        self._up = np.linspace(0.0, 1.0, self._ramp, endpoint=False, dtype=np.float32)
        self._fade_out = np.linspace(1.0, 0.0, samples, dtype=np.float32)
        self._silence = np.zeros(samples, np.int16)
        self._silence.flags.writeable = False
        self.received = self.played = self.concealed = self.shrunk = self.late = self.overflow = self.resyncs = 0
        self.skipped = 0  # frames dropped at once because far more than the jitter needs was buffered

    # ------------------------------------------------------------------ in
    def put(self, number: int, pcm: np.ndarray, arrival: float) -> None:
        """Frame ``number`` (mono int16, ``samples`` long) arrived at ``arrival``."""
        if pcm.shape != (self.samples,) or pcm.dtype != np.int16:
            raise ValueError(f"frame must be int16 of shape ({self.samples},), got {pcm.dtype} {pcm.shape}")
        self.received += 1
        self._last_arrival = arrival
        if self._next is not None and number < self._next:
            # behind playout: a late or stale frame (discarded below), or, when nothing but late frames
            # comes for a while, playout has got ahead of the sender (a restart, or a skip that left
            # the sender behind): follow the sender again
            self._behind_since = arrival if self._behind_since is None else self._behind_since
            far = number < self._next - self.resync_frames
            if arrival - self._behind_since >= self.resync_after:
                self.resyncs += 1
                self._restart(number)
            elif far:
                self.late += 1
                return
        else:
            self._behind_since = None
        if self._next is None or number >= self._next + self.capacity:
            if self._next is not None:
                self.resyncs += 1  # the sender's timeline jumped ahead: start over from this frame
            self._restart(number)
        # late frames count towards the jitter estimate too: they are what it must learn to cover
        # our own stalls delay every arrival we stamp but are no network jitter: buffering cannot hide
        # them (the ticks stall too), so the transit is counted without the latest stall
        transit = arrival - (number - self._base) * self.period
        if self._stall > 0 and self._transit:
            transit = max(transit - self._stall, min(transit, self._low[0][1]))
        self._note_transit(transit)
        if number < self._next or number in self._frames or number in self._skip:
            self.late += 1
            if number < self._next and self._origin is not None:
                # it missed its turn by this much: raise the delay now rather than after the next miss
                behind = arrival - (self._origin + (number - self._base) * self.period) - self._stall
                # ... but only as far as the late edge asks: rarer outliers are concealed, not followed
                room = int(np.ceil((self._late_edge() - self._origin) / self.period))
                self._grow = max(0, min(self.max_grow, room, max(self._grow, int(np.ceil(behind / self.period)))))
            return
        self._frames[number] = pcm
        while len(self._frames) > self.capacity:  # bounded: the oldest goes
            del self._frames[min(self._frames)]
            self.overflow += 1

    def _note_transit(self, transit: float) -> None:
        self._transit.append(transit)
        self._seen += 1
        if self._edge is None or transit > self._edge:
            self._edge_age = 1 << 30  # a new late frame counts at once
        while self._low and self._low[-1][1] >= transit:
            self._low.pop()
        self._low.append((self._seen, transit))
        oldest = self._seen - self._transit.maxlen  # type: ignore[operator]
        while self._low[0][0] <= oldest:
            self._low.popleft()

    def _restart(self, number: int) -> None:
        self._frames.clear()
        self._skip.clear()
        self._transit.clear()
        self._edge = None
        self._low.clear()
        self._base = self._next = number
        self._early = 0
        self._behind_since = None
        self._origin = None
        self._grow = 0

    # ------------------------------------------------------------------ out
    def pop(self, now: float) -> np.ndarray | None:
        """The frame for the tick running at ``now``; None before the first frame ever arrived."""
        if self._last_pop is not None:
            gap = now - self._last_pop
            self._stalls.append(max(0.0, gap - self.period))
            self._stall = max(self._stalls)
            self._catching_up = gap < self.period / 2
        self._last_pop = now
        if self._next is None:
            return None
        while self._next in self._skip:
            self._next += 1
        offset = now - (self._next - self._base) * self.period
        self._origin = offset
        if self._grow > 0:  # hold playout back one frame (counted as concealment)
            self._grow -= 1
            self._early = 0
            self.concealed += 1
            return self._conceal()
        edge = self._late_edge() if self._transit else offset
        pending = sum(1 for n in self._skip if n > self._next)  # drops decided but not yet reached
        spare = (offset - (1 + pending) * self.period - edge - self.margin) / self.period
        if spare >= self.jump_frames:  # far too much buffered (the ticks stalled): drop the excess at once
            run = 0  # ... of what is here: frames still on their way are not skipped
            while self._next + run + 1 in self._frames:
                run += 1
            if run:
                offset = self._jump(min(int(spare), run), now)
                spare = (offset - (1 + pending) * self.period - edge - self.margin) / self.period
        if spare >= 0 and self._next + 1 in self._frames:
            # a whole frame of spare delay: drop one after ``hold`` ticks, sooner the more there is
            self._early += 1
            if self._early >= max(1, self.hold // (1 + int(spare))):
                self._shrink()
                self._early = 0
        else:
            self._early = 0
        frame = self._frames.pop(self._next, None)
        if frame is not None:
            out = self._play(frame, self._skip.pop(self._next - 1, None))
            self._next += 1
            return out
        self.concealed += 1
        self._skip.pop(self._next - 1, None)
        if self._wait_for_head(offset, edge, now):
            return self._conceal()  # too early to give up on it: the offset grows by one frame
        self._next += 1  # lost: its slot is concealed and playout goes on at the same offset
        return self._conceal()

    def _late_edge(self) -> float:
        """A high quantile of recent transit (refreshed every 10 pulls, or at once when a frame came later
        than it), never more than max_delay above the fastest frames: later ones are lost."""
        self._edge_age += 1
        if self._edge is None or self._edge_age >= 10:
            self._edge = quantile(self._transit, self.quantile)
            self._edge_age = 0
        return min(self._edge, self._low[0][1] + self.max_delay)

    def _wait_for_head(self, offset: float, edge: float, now: float) -> bool:
        """The head is missing. With newer frames here it is lost. Otherwise wait for it while the measured
        jitter says it may still come, or while the whole stream has gone quiet (a sender or network
        stall, nothing for three frames: its audio is coming late, not lost), up to max_delay above the
        fastest recent frames: a stall costs delay that the release gives back, not audio."""
        if any(n > self._next for n in self._frames):
            return False
        if self._catching_up or offset < edge + self.margin:
            return True
        quiet = self._last_arrival is None or now - self._last_arrival > 3 * self.period
        return quiet and offset - self._stall < self._low[0][1] + self.max_delay

    def _play(self, frame: np.ndarray, dropped_head: np.ndarray | None) -> np.ndarray:
        self.played += 1
        out = frame
        if self._gap or dropped_head is not None:
            out = frame.copy()
            head = out[: self._ramp].astype(np.float32) * self._up
            if dropped_head is not None:  # crossfade from where the dropped frame would have gone on
                head += dropped_head.astype(np.float32) * (1.0 - self._up)
            out[: self._ramp] = np.clip(np.rint(head), -32768, 32767).astype(np.int16)
        self._gap = False
        self._last = frame
        return out

    def _conceal(self) -> np.ndarray:
        if self._gap or self._last is None:
            return self._silence
        self._gap = True
        return np.rint(self._last.astype(np.float32) * self._fade_out).astype(np.int16)

    def _jump(self, frames: int, now: float) -> float:
        """Skip ``frames`` from the head (the oldest, whose time has passed); returns the new offset."""
        for n in range(self._next, self._next + frames):
            self.skipped += self._frames.pop(n, None) is not None
            self._skip.pop(n, None)
        self._next += frames
        self._gap = True  # the next frame fades in over the cut
        self._early = 0
        offset = now - (self._next - self._base) * self.period
        self._origin = offset
        return offset

    def _shrink(self) -> None:
        """Drop the quietest frame of the contiguous run at the head (not the head itself, which plays now)."""
        run = []
        n = self._next + 1
        while n in self._frames:
            run.append(n)
            n += 1
        quietest = min(run, key=lambda k: int(np.abs(self._frames[k].astype(np.int32)).sum()))  # exact, as in C
        self._skip[quietest] = self._frames.pop(quietest)[: self._ramp]
        self.shrunk += 1

    # ------------------------------------------------------------------ inspection
    @property
    def depth(self) -> int:
        return len(self._frames)

    @property
    def jitter_s(self) -> float:
        return (max(self._transit) - min(self._transit)) if self._transit else 0.0

    @property
    def stats(self) -> JitterStats:
        return jitter_stats(self)


def jitter_stats(buf: AdaptiveJitterBuffer | Any) -> JitterStats:
    """The stats of a buffer with this class's counters, ``depth``, ``jitter_s``, ``margin`` and ``period`` (this
    class, or jitter_fast's in C)."""
    jitter = buf.jitter_s
    target = 1 + int(np.ceil((jitter + buf.margin) / buf.period))
    return JitterStats(buf.depth, target, round(jitter * 1000, 2), buf.received, buf.played, buf.concealed,
                       buf.shrunk, buf.late, buf.overflow, buf.resyncs, buf.skipped)
