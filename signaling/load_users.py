"""Generated test users for load tests and benchmarks (``bargein serve --load-users N``).

``N`` agents ``loadagent1..N``, ``N`` customers ``loadcustomer1..N`` and ``N`` supervisors
``loadsupervisor1..N``; each user's token is its name. Off by default: these tokens are public.
"""

from __future__ import annotations

from .directory import DEMO, Directory

_PROFILES = {"agent": "Agent", "customer": "Customer", "supervisor": "CallCenterManager"}


def with_load_users(directory: Directory, n: int) -> Directory:
    """A copy of ``directory`` plus ``n`` users of each role (and the demo profiles they need)."""
    if n <= 0:
        return directory
    profiles = [p.model_dump() for p in directory.profiles]
    have = {p["name"] for p in profiles}
    profiles += [p for p in DEMO["profiles"] if p["name"] not in have]  # type: ignore[union-attr]
    users = [u.model_dump() for u in directory.users]
    for role, profile in _PROFILES.items():
        users += [{"name": f"load{role}{i}", "token": f"load{role}{i}", "role": role, "profile": profile,
                   "display_name": f"Load {role} {i}"} for i in range(1, n + 1)]
    return Directory.model_validate({"profiles": profiles, "users": users})
