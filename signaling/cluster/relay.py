"""Signaling between the node that holds a client's WebSocket (the edge) and the leader's core.

The socket stays at the edge with everything that protects it there (origin check, admission, frame
size, sign-in timeout, back-pressure); only what the core needs crosses Redis: :class:`~.messages.Opened`
(with the client's address, so the per-address limits still hold), each text frame, and
:class:`~.messages.Closed`, published on the leader's ``bargein:signal:<leader>``. The leader runs each
relayed connection as an in-process connection of its server (``BargeinServer.open_local``), one task per
connection so one client's slow request never holds up another's, and publishes its frames back on
``bargein:signal:<edge>``.

When the frame cannot reach the leader (Redis down, no leader, the leader not subscribed) the edge
answers the request itself: 503 "cluster unavailable: ...".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from pydantic import ValidationError

from .. import messages as m
from . import messages as cm
from .bus import Bus, Unavailable
from .keys import signal_channel

log = structlog.get_logger("bargein.cluster")


class EdgeServer(Protocol):
    """What the relay needs of the server holding the sockets (:class:`~bargein.signaling.server.BargeinServer`)."""

    def relayed_deliver(self, conn: str, msg: dict[str, Any], signed_in: bool) -> None: ...

    def relayed_close(self, conn: str, reason: str) -> None: ...


class LeaderServer(Protocol):
    """What the relay needs of the leader's server."""

    async def open_local(self, deliver: Callable[[dict[str, Any]], None], closed: Callable[[str], None] = ...,
                         conn: str | None = None, remote: str | None = None) -> Any: ...

    def attach_local(self, deliver: Callable[[dict[str, Any]], None], closed: Callable[[str], None],
                     conn: str) -> Any: ...

    def is_signed_in(self, conn: str) -> bool: ...


def refusal(data: str, reason: str) -> dict[str, Any] | None:
    """The 503 the edge sends for a request it could not relay (None for a response or unreadable frame)."""
    try:
        msg = json.loads(data)
    except ValueError:
        return None
    if not isinstance(msg, dict) or "status" in msg:
        return None
    cseq = msg.get("cseq") if isinstance(msg.get("cseq"), int) else None
    method = msg.get("method") if isinstance(msg.get("method"), str) else None
    extra = {"call_id": msg["call_id"]} if isinstance(msg.get("call_id"), str) else {}
    return m.response(cseq, method, 503, reason, **extra)


class EdgeRelay:
    """The edge's half: this node's sockets whose sessions live on the leader."""

    def __init__(self, bus: Bus, node: str, leader: Callable[[], str | None], server: EdgeServer) -> None:
        self.bus, self.node, self.leader, self.server = bus, node, leader, server
        self.opened: dict[str, str] = {}  # conn -> the leader its frames go to
        self.home: dict[str, str] = {}  # conn -> the leader whose core holds its session
        self.remotes: dict[str, str] = {}

    async def open(self, conn: str, remote: str) -> None:
        self.remotes[conn] = remote
        with contextlib.suppress(Unavailable):  # tried again with the first frame
            await self._open(conn)

    async def _open(self, conn: str) -> str:
        leader = self.leader()
        if leader is None:
            raise Unavailable("no signaling leader (nodes are electing one)")
        msg = cm.Opened(node=self.node, conn=conn, remote=self.remotes.get(conn, "?"))
        await self._publish(leader, msg)
        self.opened[conn] = self.home[conn] = leader
        return leader

    async def _publish(self, leader: str, msg: cm._Message) -> None:
        if await self.bus.publish(signal_channel(leader), msg.model_dump_json()) == 0:
            raise Unavailable(f"the signaling leader {leader} does not answer")

    async def frame(self, conn: str, data: str) -> None:
        try:
            leader = self.opened.get(conn) or await self._open(conn)
            await self._publish(leader, cm.Frame(node=self.node, conn=conn, data=data))
        except Unavailable as exc:
            log.warning("cluster.relay_refused", conn=conn, why=str(exc))
            reply = refusal(data, str(exc))
            if reply is not None:
                self.server.relayed_deliver(conn, reply, signed_in=False)

    async def close(self, conn: str) -> None:
        self.remotes.pop(conn, None)
        self.home.pop(conn, None)
        leader = self.opened.pop(conn, None)
        if leader is not None:
            with contextlib.suppress(Unavailable):
                await self._publish(leader, cm.Closed(node=self.node, conn=conn))

    def on_deliver(self, msg: cm.Deliver | cm.Close) -> None:
        if msg.conn not in self.opened:
            return  # closed meanwhile
        if isinstance(msg, cm.Deliver):
            self.server.relayed_deliver(msg.conn, msg.message, msg.signed_in)
        else:
            self.opened.pop(msg.conn, None)
            self.home.pop(msg.conn, None)
            self.server.relayed_close(msg.conn, msg.reason)

    def leader_changed(self, old: str | None, new: str | None) -> None:
        """Sessions go on at the new leader, which loaded its predecessor's state: their frames go there
        now, and its :class:`~.messages.Adopted` says which of them it kept (:meth:`on_adopted`). With no
        leader yet, frames are refused (503) until one takes over."""
        if new is None:
            return
        for conn in self.opened:
            self.opened[conn] = new
        log.info("cluster.sessions_follow_leader", node=self.node, old=old, new=new, sessions=len(self.opened))

    def on_adopted(self, msg: cm.Adopted) -> None:
        """A new leader took over: sessions opened at an earlier leader that it did not keep end."""
        kept = set(msg.conns)
        ended = [conn for conn, home in self.home.items() if home != msg.leader and conn not in kept]
        for conn in kept & self.home.keys():
            self.home[conn] = self.opened[conn] = msg.leader
        for conn in ended:
            self.opened.pop(conn, None)
            self.home.pop(conn, None)
            self.server.relayed_close(conn, msg.reason)
        log.warning("cluster.sessions_adopted", node=self.node, leader=msg.leader, kept=len(kept & self.home.keys()),
                    ended=len(ended))


@dataclass
class _Relayed:
    node: str
    inbox: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    by_client: bool = False  # the client closed: nothing to tell the edge


class LeaderRelay:
    """The leader's half: relayed connections served by its core."""

    def __init__(self, bus: Bus, node: str, server: LeaderServer) -> None:
        self.bus, self.node, self.server = bus, node, server
        self.conns: dict[str, _Relayed] = {}
        self._held: list[cm.Opened | cm.Frame | cm.Closed] | None = None  # while taking over

    def hold(self) -> None:
        """Taking over: keep what edges send until the predecessor's sessions are adopted."""
        self._held = []

    def release(self) -> None:
        held, self._held = self._held or [], None
        for msg in held:
            self.on_signal(msg)

    def adopt(self, conn: str, edge: str) -> None:
        """Serve a session of the predecessor's core (restored here) whose socket is on ``edge``."""
        if conn not in self.conns:  # attached now: frames for it may follow at once
            r = self.conns[conn] = _Relayed(edge)
            local = self.server.attach_local(*self._callbacks(conn, r), conn=conn)
            r.task = asyncio.get_running_loop().create_task(self._pump(conn, r, local), name=f"bargein-relay-{conn}")

    def edges(self) -> dict[str, str]:
        """Relayed session -> the node holding its socket (for the snapshot)."""
        return {conn: r.node for conn, r in self.conns.items()}

    def on_signal(self, msg: cm.Opened | cm.Frame | cm.Closed) -> None:
        if self._held is not None:
            self._held.append(msg)
            return
        if isinstance(msg, cm.Opened):
            if msg.conn in self.conns:
                return
            r = self.conns[msg.conn] = _Relayed(msg.node)
            r.task = asyncio.get_running_loop().create_task(self._serve(msg.conn, msg.remote, r),
                                                            name=f"bargein-relay-{msg.conn}")
            return
        r = self.conns.get(msg.conn)
        if r is None:
            if isinstance(msg, cm.Frame):  # the leader forgot it (restarted or stepped down): the edge closes it
                self.bus.post(signal_channel(msg.node), cm.Close(
                    conn=msg.conn, reason="the signaling leader does not know this session; sign in again")
                    .model_dump_json())
            return
        if isinstance(msg, cm.Frame):
            r.inbox.put_nowait(msg.data)
        else:
            r.by_client = True
            r.inbox.put_nowait(None)

    def _callbacks(self, conn: str, r: _Relayed) -> tuple[Callable[[dict[str, Any]], None], Callable[[str], None]]:
        channel = signal_channel(r.node)

        def deliver(message: dict[str, Any]) -> None:
            self.bus.post(channel, cm.Deliver(conn=conn, message=message,
                                              signed_in=self.server.is_signed_in(conn)).model_dump_json())

        def closed(reason: str) -> None:
            if not r.by_client:
                self.bus.post(channel, cm.Close(conn=conn, reason=reason).model_dump_json())
            r.inbox.put_nowait(None)
        return deliver, closed

    async def _serve(self, conn: str, remote: str, r: _Relayed) -> None:
        local = await self.server.open_local(*self._callbacks(conn, r), conn=conn, remote=remote)
        await self._pump(conn, r, local)

    async def _pump(self, conn: str, r: _Relayed, local: Any) -> None:
        try:
            while (data := await r.inbox.get()) is not None:
                try:
                    await local.send(data)
                except ConnectionError:
                    break
        finally:
            self.conns.pop(conn, None)
            with contextlib.suppress(Exception):
                await local.close("the client disconnected" if r.by_client else "the session ended")

    def node_lost(self, node: str, reason: str) -> None:
        """The edge holding these sockets is gone: their sessions end (their users go offline)."""
        for r in [r for r in self.conns.values() if r.node == node]:
            r.by_client = True
            r.inbox.put_nowait(None)
        log.info("cluster.relayed_sessions_dropped", node=node, why=reason)

    async def close(self) -> None:
        for r in list(self.conns.values()):
            if r.task is not None:
                r.task.cancel()
        self.conns.clear()


def parse_signal(payload: str) -> cm.Signal | None:
    try:
        return cm.SIGNAL.validate_json(payload)
    except ValidationError as exc:
        log.error("cluster.bad_signal", error=str(exc)[:300])
        return None
