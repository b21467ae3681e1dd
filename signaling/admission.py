"""Who may open a signaling WebSocket, and for how long without signing in (docs/security.md).

Pure bookkeeping, no I/O: the aiohttp adapter asks before the upgrade and reports sign-ins and closes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Refusal:
    status: int  # HTTP status for the refused upgrade
    reason: str


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """A browser page may open /ws only from an allowed origin (default: the server's own).

    Non-browser clients send no Origin and are allowed; ``null`` (sandboxed frames, files) never is.
    """
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    if origin == "null" or not origin:
        return False
    if "*" in allowed:
        return True
    if origin in (a.lower().rstrip("/") for a in allowed):
        return True
    parts = urlsplit(origin)  # same origin: the page was served by this host (behind a proxy: its Host header)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc == (host or "").lower()


@dataclass
class Admission:
    """Caps unauthenticated connections per remote address and overall, keeping room for signed-in users."""

    max_connections: int
    per_address: int
    reserved_for_signed_in: int
    _pending: Counter[str] = field(default_factory=Counter)  # remote -> connections not yet signed in
    _conn_remote: dict[str, str] = field(default_factory=dict)
    _signed_in: set[str] = field(default_factory=set)

    @property
    def unauthenticated(self) -> int:
        return sum(self._pending.values())

    @property
    def total(self) -> int:
        return len(self._conn_remote)

    def admit(self, conn: str, remote: str) -> Refusal | None:
        if self.total >= self.max_connections:
            return Refusal(503, "server full")
        if self._pending[remote] >= self.per_address:
            return Refusal(429, f"too many connections from {remote} that have not signed in")
        if self.unauthenticated >= max(1, self.max_connections - self.reserved_for_signed_in):
            return Refusal(503, "too many connections that have not signed in; try again shortly")
        self._pending[remote] += 1
        self._conn_remote[conn] = remote
        return None

    def signed_in(self, conn: str) -> None:
        remote = self._conn_remote.get(conn)
        if remote is not None and conn not in self._signed_in:
            self._signed_in.add(conn)
            self._release_pending(remote)

    def is_signed_in(self, conn: str) -> bool:
        return conn in self._signed_in

    def closed(self, conn: str) -> None:
        remote = self._conn_remote.pop(conn, None)
        if remote is None:
            return
        if conn in self._signed_in:
            self._signed_in.discard(conn)
        else:
            self._release_pending(remote)

    def _release_pending(self, remote: str) -> None:
        self._pending[remote] -= 1
        if self._pending[remote] <= 0:
            del self._pending[remote]
