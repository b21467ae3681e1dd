"""The simulator's state as preallocated numpy columns: the leg table and the call table.

Both are indexed by small integer ids that are reused after a leg or call leaves, so the per-tick code
(voices, the routing checker) works on whole columns without any per-leg Python. They grow by doubling,
outside the tick's hot path, through one helper.
"""

from __future__ import annotations

import numpy as np

from .expected import NO_MODE
from .voices import SILENCE

NEVER = np.iinfo(np.int64).max  # next_toggle of a leg that is not live


def grown(arr: np.ndarray, cap: int, fill: int | bool) -> np.ndarray:
    """``arr`` with ``cap`` rows: the old rows copied, the new ones set to ``fill``."""
    new = np.full((cap, *arr.shape[1:]), fill, dtype=arr.dtype)
    new[: arr.shape[0]] = arr
    return new


class LegTable:
    """One row per simulated leg (columns indexed by sim leg id), and the live legs in a dense order.

    The dense order (swap-remove on leave) lists the live legs so that position ``i`` gives mixer leg
    ``dense_mixer[i]`` the tone-table row ``speaks[i]`` (its tone, or silence): a tick hands the mixer both
    columns as they are, and only talk toggles rewrite entries of ``speaks``.
    """

    def __init__(self, cap: int = 1024) -> None:
        # per sim leg id
        self.mixer = np.empty(0, np.int64)  # mixer leg id, -1 when free
        self.call = np.empty(0, np.int64)  # call slot
        self.role = np.empty(0, np.int64)  # expected.CUSTOMER ... SUPERVISOR
        self.mode = np.empty(0, np.int64)  # expected.NO_MODE ... COACH
        self.muted = np.empty(0, bool)
        self.held = np.empty(0, bool)
        self.talking = np.empty(0, bool)
        self.next_toggle = np.empty(0, np.int64)  # tick of the next talk/silence switch
        self.bin = np.empty(0, np.int64)  # the leg's tone (row of the tone table)
        self.active = np.empty(0, bool)
        self.pos = np.empty(0, np.int64)  # position in the dense order, -1 when free
        self.names: list[str] = []
        # per dense position
        self.order = np.empty(0, np.int64)  # sim leg id
        self.dense_mixer = np.empty(0, np.int64)  # its mixer leg id
        self.speaks = np.empty(0, np.int64)  # the tone-table row of its current frame
        self.n = 0  # live legs
        self.cap = 0
        self._free: list[int] = []
        self.grow(cap)

    def grow(self, cap: int) -> None:
        """Make room for ``cap`` legs (ids ``old cap .. cap - 1`` are handed out next, lowest first)."""
        old = self.cap
        if cap <= old:
            return
        self.mixer = grown(self.mixer, cap, -1)
        self.call = grown(self.call, cap, -1)
        self.role = grown(self.role, cap, 0)
        self.mode = grown(self.mode, cap, NO_MODE)
        self.muted = grown(self.muted, cap, False)
        self.held = grown(self.held, cap, False)
        self.talking = grown(self.talking, cap, False)
        self.next_toggle = grown(self.next_toggle, cap, NEVER)
        self.bin = grown(self.bin, cap, SILENCE)
        self.active = grown(self.active, cap, False)
        self.pos = grown(self.pos, cap, -1)
        self.names.extend([""] * (cap - old))
        self.order = grown(self.order, cap, 0)
        self.dense_mixer = grown(self.dense_mixer, cap, -1)
        self.speaks = grown(self.speaks, cap, SILENCE)
        self._free.extend(range(cap - 1, old - 1, -1))
        self.cap = cap

    @property
    def live(self) -> np.ndarray:
        """Sim leg ids of the live legs, in dense order."""
        return self.order[: self.n]

    def add(self, *, name: str, call: int, mixer_leg: int, role: int, mode: int, tone: int, talking: bool,
            next_toggle: int, speaks: int) -> int:
        """A new live leg; returns its sim leg id."""
        if not self._free:
            self.grow(self.cap * 2)
        s = self._free.pop()
        self.mixer[s] = mixer_leg
        self.call[s] = call
        self.role[s] = role
        self.mode[s] = mode
        self.muted[s] = self.held[s] = False
        self.talking[s] = talking
        self.next_toggle[s] = next_toggle
        self.bin[s] = tone
        self.active[s] = True
        self.names[s] = name
        n = self.n
        self.order[n] = s
        self.pos[s] = n
        self.dense_mixer[n] = mixer_leg
        self.speaks[n] = speaks
        self.n = n + 1
        return s

    def remove(self, s: int) -> None:
        """Sim leg ``s`` leaves: the last live leg takes its dense position; its id is free again."""
        p, last = int(self.pos[s]), self.n - 1
        if p != last:
            moved = int(self.order[last])
            self.order[p] = moved
            self.pos[moved] = p
            self.dense_mixer[p] = self.dense_mixer[last]
            self.speaks[p] = self.speaks[last]
        self.pos[s] = -1
        self.active[s] = False
        self.mixer[s] = -1
        self.next_toggle[s] = NEVER
        self.bin[s] = SILENCE
        self._free.append(s)
        self.n = last


class CallTable:
    """Call slots (reused after a call ends) and each call's member legs: ``members[slot]`` lists sim leg ids,
    -1 in unused columns, so the checker finds every listener's call mates with one gather."""

    def __init__(self, max_legs: int, cap: int = 256) -> None:
        self.members = np.empty((0, max_legs), np.int64)
        self.cap = 0
        self._used = 0  # slots ever handed out
        self._free: list[int] = []
        self.grow(cap)

    def grow(self, cap: int) -> None:
        if cap > self.cap:
            self.members = grown(self.members, cap, -1)
            self.cap = cap

    def open(self) -> int:
        """A free call slot (a freed one first), with no members."""
        if self._free:
            return self._free.pop()
        if self._used == self.cap:
            self.grow(self.cap * 2)
        self._used += 1
        return self._used - 1

    def close(self, slot: int) -> None:
        self._free.append(slot)

    def join(self, slot: int, s: int) -> None:
        row = self.members[slot]
        row[np.flatnonzero(row < 0)[0]] = s

    def leave(self, slot: int, s: int) -> None:
        row = self.members[slot]
        row[row == s] = -1
