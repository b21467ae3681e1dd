"""Who should hear whom, written independently of ``mixer.routing``.

The checker must catch a broken mixer routing, so it does not call ``mixer.routing.route``/``hears``:
this module transcribes the routing table of docs/behaviour.md literally and applies the mute, hold
and talking rules on top, vectorised over many (listener, speaker) pairs.
"""

from __future__ import annotations

import numpy as np

# role and mode codes used in the simulator's leg arrays
CUSTOMER, AGENT, PARTY, SUPERVISOR = 0, 1, 2, 3
NO_MODE, MONITOR, BARGE, COACH = 0, 1, 2, 3
ROLE_NAMES = ("customer", "agent", "party", "supervisor")
MODE_NAMES = ("", "monitor", "barge", "coach")

# docs/behaviour.md, "Routing table" (✓ = the row's listener hears the column's speaker).
# columns: customer, agent, other party, sup. monitor, sup. barge, sup. coach
# rows:    customer, agent, other party, any supervisor
# The table's "—" is the listener itself (mix-minus, handled by the identity test below); two *different*
# legs with the same party role (two third parties) hear each other like any two parties do.
_Y, _N, _SELF = True, False, True
TABLE = np.array(
    [
        # cust  agent other  s.mon s.barge s.coach
        [_SELF, _Y, _Y, _N, _Y, _N],  # customer
        [_Y, _SELF, _Y, _N, _Y, _Y],  # agent
        [_Y, _Y, _SELF, _N, _Y, _N],  # other party
        [_Y, _Y, _Y, _N, _Y, _Y],  # any supervisor
    ],
    dtype=bool,
)


def speaker_column(role: np.ndarray, mode: np.ndarray) -> np.ndarray:
    """Table column of each speaker: parties by role, supervisors by mode (monitor, barge, coach)."""
    return np.where(role == SUPERVISOR, 2 + mode, role)


def should_hear(
    l_id: np.ndarray, l_role: np.ndarray, l_held: np.ndarray,
    s_id: np.ndarray, s_role: np.ndarray, s_mode: np.ndarray, s_muted: np.ndarray, s_held: np.ndarray,
    s_talking: np.ndarray,
) -> np.ndarray:
    """Boolean array (broadcast shapes): does the listener hear this speaker's voice right now?

    - the table cell for (listener role, speaker role/mode);
    - nobody hears themselves (mix-minus);
    - a muted speaker is heard by nobody; a held party hears nothing and is heard by nobody;
    - a speaker in a silence spurt produces nothing to hear.
    """
    cell = TABLE[l_role, speaker_column(s_role, s_mode)]
    return cell & (l_id != s_id) & ~s_muted & ~s_held & ~l_held & s_talking
