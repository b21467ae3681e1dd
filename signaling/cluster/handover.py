"""The leader's signaling state, kept in Redis so that another node can take over when the leader dies.

The leader writes a snapshot of everything a successor needs (``bargein:core``): the signaling core
(sessions, agents, queues, calls, supervisors, chats, rate limits, ring timers), the contact log's live
contacts and recordings, where each call's media runs and which node holds each relayed session's
socket. It writes only while it holds the leader lock (a compare-and-set script: a deposed leader never
overwrites its successor), whenever its state has changed: ahead of everything it publishes (the
snapshot heads each outbox pipeline, so no party, edge or media node hears of a change that a successor
would not know), and otherwise at most every ``SNAPSHOT_EVERY_S``. The whole state is written each time:
70-90 µs per call with its two sessions (``benchmarks.handover``). Once a snapshot takes more than
5 ms of CPU (some tens of calls), snapshots are kept to a fifth of the leader's time: with a big state under
load a change may then be published before the snapshot that has it, and a successor may not know it.

The successor loads it, keeps the sessions whose socket is on a live node and the calls whose media
runs on a live node, and ends the rest with a reason (docs/architecture.md, "Cluster": "Leader failover").
What changed in the last ``SNAPSHOT_EVERY_S`` before the leader died and was told only to the leader's
own sockets is not in the snapshot; those sockets died with it.

The snapshot is a pickle of the core's own objects: the nodes of one cluster run the same code (its
``version`` is checked, and a snapshot that does not load is ignored). Redis is trusted, as for the
rest of the cluster: whoever can write to it controls the cluster, so it must not be reachable by clients.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import io
import pickle
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

import structlog

from .bus import Bus, Unavailable
from .keys import CORE, CORE_TTL_MS, LEADER, SNAPSHOT_EVERY_S

if TYPE_CHECKING:
    from ..contact_log import ContactLog
    from ..core import SignalingCore

log = structlog.get_logger("bargein.cluster")

FORMAT = 1  # bump when the snapshot's layout changes
try:
    CODE = f"{version('bargein')}/{FORMAT}"
except PackageNotFoundError:  # running from a source tree without an install
    CODE = f"source/{FORMAT}"

# the core's attributes that belong to the node, not to the state: rebuilt by SignalingCore.__init__
STRICT_BELOW_S = 0.005  # a snapshot cheaper than this heads every pipeline that follows a change
COST_SHARE = 5  # dearer ones take at most about a fifth of the leader's time
_NODE_PARTS = ("_handlers", "settings", "directory", "clock")
_CONTACT_STATE = ("contacts", "sessions", "recording", "_rec_calls", "_rec_contacts", "_rec_ids")

# KEYS: leader lock, snapshot; ARGV: node, snapshot, ttl ms. Written only by the holder of the lock.
WRITE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""


@dataclass
class Snapshot:
    """What a leader hands to its successor."""

    leader: str
    boot: str
    written: float  # wall-clock time
    core: dict[str, Any]
    contacts: dict[str, Any]
    media: dict[str, Any]  # ClusterMedia.state()
    relayed: dict[str, str]  # relayed session (conn) -> the node holding its socket
    code: str = CODE


_LOADING: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("bargein_handover_loading")


def _node_object(name: str) -> Any:
    """Unpickling: the loading node's own object of that name."""
    try:
        return _LOADING.get()[name]
    except (LookupError, KeyError):
        raise pickle.UnpicklingError(f"unknown node object {name!r}") from None


class _Pickler(pickle.Pickler):
    """Pickles the state; the node's own objects (settings, users, the contact log) go by name.
    ``reducer_override`` (unlike ``persistent_id``) is not called for str, int, dict, list...: a third
    of the time for a busy core."""

    def __init__(self, buf: io.BytesIO, node_objects: dict[int, str]) -> None:
        super().__init__(buf, protocol=pickle.HIGHEST_PROTOCOL)
        self.node_objects = node_objects

    def reducer_override(self, obj: Any) -> Any:  # noqa: D102
        name = self.node_objects.get(id(obj))
        return NotImplemented if name is None else (_node_object, (name,))


def _node_objects(core: SignalingCore, contacts: ContactLog) -> dict[str, Any]:
    named: dict[str, Any] = {"settings": core.settings, "directory": core.directory, "contacts": contacts}
    named.update({f"user:{u.name}": u for u in core.directory.users})
    return named


def dumps(snapshot: Snapshot, core: SignalingCore, contacts: ContactLog) -> str:
    buf = io.BytesIO()
    _Pickler(buf, {id(o): name for name, o in _node_objects(core, contacts).items()}).dump(snapshot)
    return base64.b64encode(zlib.compress(buf.getvalue(), 1)).decode("ascii")


def loads(text: str, core: SignalingCore, contacts: ContactLog) -> Snapshot:
    """``core``/``contacts``: this node's (fresh) ones, whose settings and users the state refers to."""
    raw = zlib.decompress(base64.b64decode(text))
    token = _LOADING.set(_node_objects(core, contacts))
    try:
        snap = pickle.loads(raw)  # noqa: S301 - written by this cluster's leader (Redis is trusted)
    finally:
        _LOADING.reset(token)
    if not isinstance(snap, Snapshot):
        raise pickle.UnpicklingError(f"not a snapshot: {type(snap).__name__}")
    return snap


def core_state(core: SignalingCore) -> dict[str, Any]:
    return {k: v for k, v in core.__dict__.items() if k not in _NODE_PARTS}


def contact_state(contacts: ContactLog) -> dict[str, Any]:
    return {k: getattr(contacts, k) for k in _CONTACT_STATE}


def install(core: SignalingCore, contacts: ContactLog, snap: Snapshot) -> None:
    """Put the snapshot's state into a fresh core and this node's contact log."""
    core.__dict__.update(snap.core)
    for k, v in snap.contacts.items():
        setattr(contacts, k, v)


class Handover:
    """The leader's writer of snapshots, and the successor's reader."""

    def __init__(self, bus: Bus, node: str, boot: str) -> None:
        self.bus, self.node, self.boot = bus, node, boot
        self.leading = False
        self.written = 0  # snapshots written (for /healthz)
        self.failed = 0  # snapshots that could not be made
        self.last_bytes = 0
        self._dirty = asyncio.Event()
        self._write = bus.redis.register_script(WRITE)
        self.take: Callable[[], str | None] = lambda: None  # the snapshot's text, or None (nothing to hand over)
        self.cost_s = 0.0  # the CPU time the last snapshot took to make
        self._taken = 0.0  # when (monotonic)
        bus.prelude, bus.prelude_lost = self._prelude, self.changed

    def changed(self) -> None:
        """The leader's state changed: a snapshot follows within ``SNAPSHOT_EVERY_S``."""
        if self.leading:
            self._dirty.set()

    def _take(self) -> str | None:
        """The snapshot's text; None if it cannot be made (logged): a state that does not pickle must
        never stop the outbox it heads, nor the writer."""
        t0 = time.thread_time()  # CPU time: other processes on a loaded machine must not make it look dear
        try:
            text = self.take()
        except Exception as exc:
            self.failed += 1
            if self.failed == 1 or self.failed % 1000 == 0:
                log.exception("cluster.snapshot_failed", node=self.node, failed=self.failed,
                              error=f"{type(exc).__name__}: {exc}")
            text = None
        self._taken, self.cost_s = time.monotonic(), time.thread_time() - t0
        return text

    def _prelude(self, pipe: Any) -> None:
        """At the head of an outbox pipeline: the state as it is now, if it changed; unless a snapshot
        costs more than ``STRICT_BELOW_S`` and snapshots would take more than 1 / ``COST_SHARE`` of the
        leader's time (a big state under load): then the next pipeline or the writer below carries it."""
        if self.leading and self._dirty.is_set() and (
                self.cost_s < STRICT_BELOW_S or time.monotonic() - self._taken >= COST_SHARE * self.cost_s):
            self._dirty.clear()
            text = self._take()
            if text is not None:
                pipe.eval(WRITE, 2, LEADER, CORE, self.node, text, CORE_TTL_MS)
                self.written += 1
                self.last_bytes = len(text)

    async def run(self) -> None:
        """Write a changed state that nothing published yet; and every third of the TTL anyway, so the
        key outlives a quiet leader."""
        keep_s = CORE_TTL_MS / 3000
        last = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout=keep_s)
            await asyncio.sleep(max(0.0, last + max(SNAPSHOT_EVERY_S, COST_SHARE * self.cost_s) - time.monotonic()))
            if not self.leading:
                self._dirty.clear()
                continue
            if not self._dirty.is_set() and time.monotonic() - last < keep_s:
                continue  # an outbox pipeline carried it meanwhile
            self._dirty.clear()
            text = self._take()
            last = time.monotonic()
            if text is None:
                continue
            try:
                ok = await self.write(text)
            except Unavailable:
                self._dirty.set()  # again when Redis answers
                await asyncio.sleep(SNAPSHOT_EVERY_S)
                continue
            if ok:
                self.written += 1
                self.last_bytes = len(text)
            else:
                log.warning("cluster.snapshot_refused", node=self.node, why="this node does not hold the leader lock")

    async def write(self, text: str) -> bool:
        """Write now (a leader's clean exit); False if this node does not hold the lock."""
        return bool(await self.bus.run(lambda r: self._write(keys=[LEADER, CORE], args=[self.node, text, CORE_TTL_MS])))

    async def load(self) -> str | None:
        return await self.bus.run(lambda r: r.get(CORE))
