"""The aiohttp server: a thin adapter around the sans-IO core, the mixer and the media gateway.

Routes: ``/ws`` (signaling), ``GET /api/agents`` ``/api/calls`` ``/api/records`` (need a token with
access_metrics: ``Authorization: Bearer <token>`` or ``?token=``), ``/api/contacts...`` (persistent
contacts and recordings, :mod:`signaling.contacts_api`), ``GET /healthz``, ``GET /metrics``
(Prometheus), and the web client at ``/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiohttp import WSMsgType, web
from bargein.mixer import LimitError, MixerEngine, RealtimeClock
from bargein.mixer.metrics import MixerMetrics
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from . import messages as m
from .admission import Admission, origin_allowed
from .contact_log import ContactLog, Recorder
from .contacts_api import ContactsApi
from .core import Action, AddLeg, CloseConnection, MeterCall, RemoveLeg, Send, SignalingCore, UpdateLeg
from .directory import User, load_directory
from .gateway import MediaError, MediaGateway
from .levels import LevelMeter
from .load_users import with_load_users
from .media.pool import WorkerPool
from .media.recording import PoolRecorder
from .recorder import CallRecorder
from .settings import QueueSettings, Settings

log = structlog.get_logger("bargein.server")
STATIC = Path(__file__).parent / "static"
SEND_QUEUE = 256  # frames waiting for a slow client before it is disconnected
CLOSE_GRACE_S = 1.0  # a close frame that cannot be sent by then means the transport is aborted
MAX_FRAME = 1 << 20  # frames above 1 MiB close the socket (docs/protocol.md); smaller ones get 413 from the core


class Service(Protocol):
    """Something that runs inside the server (e.g. simulated demo calls)."""

    async def start(self, server: BargeinServer) -> None: ...

    async def stop(self) -> None: ...


class LocalConnection:
    """An in-process user of the server (:meth:`BargeinServer.open_local`): the protocol of ``/ws``
    without a socket. Frames for it go to ``deliver``, which must not block (queue them)."""

    def __init__(self, server: BargeinServer, conn: str, deliver: Callable[[dict[str, Any]], None],
                 closed: Callable[[str], None]) -> None:
        self.server, self.conn, self.deliver, self.closed = server, conn, deliver, closed

    async def send(self, msg: dict[str, Any]) -> None:
        """One frame from this user, handled like a WebSocket frame."""
        if self.conn not in self.server._locals:
            raise ConnectionError(f"{self.conn} is closed")
        await self.server.apply(self.server.core.handle(self.conn, msg))

    async def close(self, reason: str = "closed by the client") -> None:
        """Sign out: the core frees this user's legs and calls as for a dropped WebSocket."""
        if self.server._locals.pop(self.conn, None) is not None:
            self.closed(reason)
            await self.server.apply(self.server.core.disconnect(self.conn))


class Relay(Protocol):
    """Where the sessions of this node's sockets live when it is one node of a cluster and not its
    signaling leader (:mod:`bargein.signaling.cluster.relay`): frames go there, and come back through
    :meth:`BargeinServer.relayed_deliver` / :meth:`BargeinServer.relayed_close`."""

    def relays(self) -> bool:
        """True: a socket opened now is relayed to the leader (this node does not run the core)."""

    async def open(self, conn: str, remote: str) -> None: ...

    async def frame(self, conn: str, data: str) -> None: ...

    async def close(self, conn: str) -> None: ...


class _Peer:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(SEND_QUEUE)
        self.writer: asyncio.Task[None] | None = None
        self.dropping = False  # overflowed: being disconnected (logged once)
        self.relayed = False  # the session lives on the cluster's leader
        self.signed_in = False  # (relayed) the leader said the session signed in
        self.signin_deadline: asyncio.TimerHandle | None = None


class BargeinServer:
    def __init__(self, settings: Settings | None = None, gateway: MediaGateway | None = None,
                 services: list[Service] | None = None, media: WorkerPool | None = None) -> None:
        self.settings = settings or Settings()
        self.directory = with_load_users(load_directory(self.settings.users_file), self.settings.load_users)
        self.core = SignalingCore(self.settings, self.directory)
        self.relay: Relay | None = None  # set when this server is a node of a cluster
        self.conn_suffix = ""  # a cluster node's "@node": connection ids unique in the cluster
        # a cluster node that does not lead answers the supervisor API from the leader (None: answer here)
        self.api_forward: Callable[[web.Request], Awaitable[web.Response | None]] | None = None
        self.state_changed: Callable[[], None] = lambda: None  # before each batch of actions (cluster snapshots)
        rt = self.settings.mixer_realtime
        self.engine = MixerEngine(rate=self.settings.mixer_rate, limits=self.settings.limits,
                                  threads=self.settings.mixer_threads, realtime=rt)
        # the mix computes off the event loop, in the clock's own (real-time) thread; that thread keeps the time,
        # unless an in-process media gateway feeds the mixer from its jitter buffers on the loop at each tick
        self.clock = RealtimeClock(self.engine.tick, offload=True, realtime=rt,
                                   timing="thread" if gateway is None else "loop")
        self.gateway = gateway
        self.services = list(services or [])
        self.legs: dict[str, int] = {}  # core leg key -> mixer leg id
        self.leg_keys: dict[int, str] = {}
        self.peers: dict[str, _Peer] = {}
        self._locals: dict[str, LocalConnection] = {}  # in-process users (open_local)
        self._conn_ids = itertools.count(1)
        self.admission = Admission(self.settings.max_connections, self.settings.max_unauthenticated_per_address,
                                   self.settings.reserved_for_signed_in)
        self._lock = asyncio.Lock()  # actions are applied in order, one batch at a time
        self._timers = asyncio.Event()  # set when the core's next deadline moved
        self._armed: float | None = None  # the deadline the timeout task sleeps until
        self._tasks: list[asyncio.Task[None]] = []
        self.registry = CollectorRegistry()
        self.media = media  # media worker processes; None: legs and mixer live in this process
        # persistent records and recordings: calls are recorded where they are mixed
        recorder: Recorder = PoolRecorder(media) if media is not None else CallRecorder(self.engine)
        if isinstance(recorder, CallRecorder):
            self.clock.add_listener(recorder.on_tick)
        self.contacts = ContactLog(self.settings, recorder)
        self._wire_core()
        if media is None:
            MixerMetrics(self.engine, self.clock, self.registry)
        else:
            media.attach(self._media_leg_lost, self._media_calls_lost)
            self.registry.register(media.collector())  # type: ignore[arg-type]
        Gauge("bargein_connections", "Open signaling connections", registry=self.registry).set_function(
            lambda: len(self.peers))
        Gauge("bargein_live_calls", "Calls ringing or active", registry=self.registry).set_function(
            lambda: len(self.core.calls))
        if gateway is not None:
            gateway.attach(self.engine, self.clock, self._leg_lost)
        # who talks on supervised calls (NOTIFY levels): measured where the call is mixed
        self.levels = LevelMeter(self.engine.legs_of)  # in this process: the gateway's and the demo's frames
        if media is None:
            self.clock.add_listener(self._levels_tick)
            if gateway is not None:
                gateway.meter = self.levels
        else:
            media.on_levels = self._media_levels

    def _wire_core(self) -> None:
        self.core.records.listener = self.contacts
        self.core.chat.on_ended.append(self.contacts.chat_ended)

    async def reset_core(self, reason: str) -> None:
        """Start again with an empty signaling core (a cluster node that stopped or started leading):
        every session ends with ``reason`` and its client must sign in again."""
        log.warning("server.core_reset", reason=reason, calls=len(self.core.calls), sessions=len(self.core.conns))
        for conn, local in list(self._locals.items()):
            self._locals.pop(conn, None)
            local.closed(reason)
        for peer in [p for p in self.peers.values() if not p.relayed]:
            await self._close_after_writes(peer, 4503, reason)
        async with self._lock:
            self.core = SignalingCore(self.settings, self.directory)
            self._wire_core()
        self._timers.set()

    async def take_over(self, install: Callable[[SignalingCore], list[str]]) -> None:
        """Become a cluster's leader with its predecessor's state: ``install`` fills a fresh core (and the
        contact log) and returns the sessions that did not survive, which are ended here (their calls end
        for the others with the usual reasons)."""
        async with self._lock:
            core = SignalingCore(self.settings, self.directory)
            lost = install(core)
            self.core = core
            self._wire_core()
            actions: list[Action] = []
            for conn in lost:
                actions += core.disconnect(conn)
        log.warning("server.core_taken_over", calls=len(self.core.calls), sessions=len(self.core.conns),
                    ended=len(lost))
        await self.apply(actions)
        self._timers.set()

    # ------------------------------------------------------------------ in-process users
    async def open_local(self, deliver: Callable[[dict[str, Any]], None],
                         closed: Callable[[str], None] = lambda why: None, conn: str | None = None,
                         remote: str | None = None) -> LocalConnection:
        """Connect a user that runs in this process (simulated demo calls): it speaks the same protocol
        as a WebSocket client, through :meth:`LocalConnection.send`, and receives frames through
        ``deliver``; ``closed`` is told when the server ends the connection (e.g. signed in elsewhere).
        :meth:`SignalingClient.in_process <bargein.signaling.client.SignalingClient.in_process>` wraps it.
        A cluster's leader serves relayed sockets this way, with their own ``conn`` id and ``remote`` address."""
        local = self.attach_local(deliver, closed, conn or f"local-{next(self._conn_ids)}")
        await self.apply(self.core.connect(local.conn, remote=remote))
        return local

    def attach_local(self, deliver: Callable[[dict[str, Any]], None], closed: Callable[[str], None],
                     conn: str) -> LocalConnection:
        """An in-process user for a session the core already holds (a new cluster leader took it over)."""
        local = self._locals[conn] = LocalConnection(self, conn, deliver, closed)
        return local

    def is_signed_in(self, conn: str) -> bool:
        """The connection has signed in (REGISTER succeeded)."""
        return self._signed_in(conn)

    def add_user(self, user: User) -> None:
        """Add a user at run time (demo calls bring their own agents and customers)."""
        if self.directory.user(user.name) is None:
            self.directory.add_user(user)
            log.info("server.user_added", user=user.name, role=user.role, profile=user.profile)

    def add_queue(self, name: str, queue: QueueSettings) -> None:
        """Open (or reconfigure) a queue at run time."""
        self.settings.queues[name] = queue
        log.info("server.queue_added", queue=name, agents=queue.agents, monitoring_allowed=queue.monitoring_allowed)

    # ------------------------------------------------------------------ app
    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_get("/ws", self.ws_handler)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/api/agents", self.api(lambda: {"agents": self.core.agents_view()}))
        app.router.add_get("/api/calls", self.api(lambda: {"calls": self.core.calls_view()}))
        app.router.add_get("/api/records", self.api(self.core.records.as_dict))
        ContactsApi(self.directory, self.contacts).add_routes(app)
        if STATIC.is_dir():
            app.router.add_get("/", self.index)
            app.router.add_static("/static/", STATIC)
        app.on_startup.append(self._startup)
        app.on_shutdown.append(self._shutdown)
        return app

    async def _startup(self, app: web.Application) -> None:
        self.contacts.start()
        if self.media is not None:
            await self.media.start()
        else:
            self.engine.start_workers()
            self.clock.start()
        self._tasks.append(asyncio.get_running_loop().create_task(self._timeouts(), name="bargein-timeouts"))
        for svc in self.services:
            await svc.start(self)
        log.info("server.started", rate=self.engine.rate, enhanced_monitoring=self.settings.enhanced_monitoring,
                 gateway=type(self.gateway).__name__ if self.gateway else None)

    async def _shutdown(self, app: web.Application) -> None:
        for svc in self.services:
            await svc.stop()
        for local in list(self._locals.values()):
            await local.close("the server is shutting down")
        for peer in list(self.peers.values()):
            await peer.ws.close()
        for t in self._tasks:
            t.cancel()
        if self.gateway is not None:
            await self.gateway.close()
        if self.media is not None:
            await self.media.close()
        await self.clock.stop()
        await self.contacts.close()

    async def _timeouts(self) -> None:
        """Sleep until the core's next deadline (a ring timeout), waking early when a request moves it."""
        while True:
            self._timers.clear()
            self._armed = deadline = self.core.next_deadline()
            delay = None if deadline is None else max(0.0, deadline - self.core.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timers.wait(), delay)
            await self.apply(self.core.poll())

    # ------------------------------------------------------------------ http
    async def index(self, request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html")

    async def healthz(self, request: web.Request) -> web.Response:
        if self.media is not None:
            return web.json_response({"status": "ok", "calls": len(self.core.calls), "connections": len(self.peers),
                                      **await self.media.health()})
        s = self.clock.stats
        counters = self.engine.counters
        p50, p99 = s.percentiles("compute_ms", (50, 99))
        tick_ms = {"p50": round(p50, 3), "p99": round(p99, 3), "max": round(s.max_compute_ms, 3)}
        return web.json_response({"status": "ok", "calls": len(self.core.calls), "connections": len(self.peers),
                                  "mixer": {"calls": self.engine.call_count, "legs": self.engine.leg_count,
                                            "rate": self.engine.rate, "ticks": s.ticks,
                                            "deadline_misses": s.deadline_misses, "skipped_ticks": self.clock.skipped,
                                            "tick_ms": tick_ms, "frames_missing": counters.frames_missing,
                                            "frames_dropped": counters.frames_dropped},
                                  **({"inbound": self.gateway.inbound_totals()}
                                     if hasattr(self.gateway, "inbound_totals") else {})})

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), content_type="text/plain")

    def api(self, view: Any) -> Any:
        async def handler(request: web.Request) -> web.Response:
            token = request.query.get("token")
            auth = request.headers.get("Authorization")
            if not token and auth:
                scheme, _, credentials = auth.strip().partition(" ")
                if scheme.lower() != "bearer":  # the scheme is case-insensitive (RFC 7235)
                    return web.json_response({"status": 401, "reason": "Authorization must be 'Bearer <token>'"},
                                             status=401)
                token = credentials.strip()
            user = self.directory.by_token(token) if token else None
            if user is None:
                return web.json_response({"status": 401, "reason": "a valid token is required"}, status=401)
            if "access_metrics" not in self.directory.permissions(user):
                log.info("server.refused", user=user.name, path=request.path, why="lacks access_metrics")
                return web.json_response({"status": 403, "reason": f"profile {user.profile} lacks access_metrics"},
                                         status=403)
            if self.api_forward is not None and (forwarded := await self.api_forward(request)) is not None:
                return forwarded  # the cluster's leader holds the live state
            return web.json_response(view())
        return handler

    # ------------------------------------------------------------------ websocket
    async def ws_handler(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, request.host, self.settings.allowed_origins):
            log.warning("server.refused_origin", origin=origin[:200] if origin else None, remote=request.remote)
            return web.json_response({"status": 403, "reason": "this page's origin may not open the signaling "
                                      "socket (setting allowed_origins)"}, status=403)
        conn = f"ws-{next(self._conn_ids)}{self.conn_suffix}"
        remote = request.remote or "?"
        refusal = self.admission.admit(conn, remote)
        if refusal is not None:
            log.warning("server.refused_connection", remote=remote, status=refusal.status, why=refusal.reason)
            return web.json_response({"status": refusal.status, "reason": refusal.reason}, status=refusal.status)
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_FRAME + 1)  # aiohttp refuses sizes >= the limit
        try:
            await ws.prepare(request)
        except BaseException:
            self.admission.closed(conn)
            raise
        peer = self.peers[conn] = _Peer(ws, request)
        loop = asyncio.get_running_loop()
        peer.writer = loop.create_task(self._writer(conn, peer))
        deadline = peer.signin_deadline = loop.call_later(self.settings.signin_timeout_s, self._signin_expired, conn)
        relay = self.relay if self.relay is not None and self.relay.relays() else None
        peer.relayed = relay is not None
        log.info("server.connected", conn=conn, remote=remote, relayed=peer.relayed)
        try:
            if relay is not None:
                await relay.open(conn, remote)
            else:
                await self.apply(self.core.connect(conn, remote=remote))
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    if relay is not None:
                        data = msg.data if isinstance(msg.data, str) else msg.data.decode("utf-8", "replace")
                        await relay.frame(conn, data)
                    else:
                        await self.apply(self.core.handle(conn, msg.data))
                    if not self.admission.is_signed_in(conn) and self._signed_in(conn):
                        self.admission.signed_in(conn)
                        deadline.cancel()
                    if not await self._drained(peer):
                        self._drop_slow(conn, peer)
                        break
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            deadline.cancel()
            self.admission.closed(conn)
            self.peers.pop(conn, None)
            if relay is not None:
                await relay.close(conn)
            else:
                await self.apply(self.core.disconnect(conn))
            peer.queue.put_nowait(None) if not peer.queue.full() else None
            if peer.writer:
                peer.writer.cancel()
            log.info("server.disconnected", conn=conn)
        return ws

    def _signed_in(self, conn: str) -> bool:
        peer = self.peers.get(conn)
        if peer is not None and peer.relayed:
            return peer.signed_in
        c = self.core.conns.get(conn)
        return c is not None and c.user is not None

    # ------------------------------------------------------------------ relayed sockets (cluster)
    def relayed_deliver(self, conn: str, msg: dict[str, Any], signed_in: bool) -> None:
        """A frame from the cluster's leader for one of this node's sockets."""
        peer = self.peers.get(conn)
        if peer is None:
            return
        if signed_in and not peer.signed_in:
            peer.signed_in = True
            self.admission.signed_in(conn)
            if peer.signin_deadline is not None:
                peer.signin_deadline.cancel()
        self._send_socket(conn, msg)

    def relayed_close(self, conn: str, reason: str) -> None:
        """The leader ended the session (or the cluster lost it): close the socket with the reason."""
        peer = self.peers.get(conn)
        if peer is not None:
            log.info("server.relayed_closed", conn=conn, why=reason)
            asyncio.get_running_loop().create_task(self._close_after_writes(peer, 4503, reason))

    async def _close_after_writes(self, peer: _Peer, code: int, reason: str, timeout_s: float = 2.0) -> None:
        """Close once the frames already queued for the client have gone (the BYE before the close)."""
        waited = 0.0
        while not peer.queue.empty() and waited < timeout_s:
            await asyncio.sleep(0.01)
            waited += 0.01
        await asyncio.sleep(0.05)  # the writer's last send_json
        await self._close_or_abort(peer, code, reason)

    def _signin_expired(self, conn: str) -> None:
        peer = self.peers.get(conn)
        if peer is not None and not self.admission.is_signed_in(conn):
            log.info("server.signin_timeout", conn=conn, after_s=self.settings.signin_timeout_s)
            asyncio.get_running_loop().create_task(self._close_or_abort(peer, 4408, "sign in (REGISTER) first"))

    def _drop_slow(self, conn: str, peer: _Peer) -> None:
        """Disconnect a client that does not read: once, logged once; its legs are freed when its loop ends."""
        if peer.dropping:
            return
        peer.dropping = True
        log.warning("server.slow_client", conn=conn, queued=peer.queue.qsize())
        asyncio.get_running_loop().create_task(self._close_or_abort(peer, 4008, "too slow"))

    async def _close_or_abort(self, peer: _Peer, code: int, reason: str) -> None:
        if peer.writer is not None:
            peer.writer.cancel()  # a writer stuck on a full socket must not hold the close back
        try:
            await asyncio.wait_for(peer.ws.close(code=code, message=reason.encode()[:120]), CLOSE_GRACE_S)
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        transport = peer.request.transport
        if transport is not None:
            transport.abort()  # a peer that never took the close frame is cut, so its reader loop ends now

    async def _drained(self, peer: _Peer, timeout_s: float = 10.0) -> bool:
        """Back-pressure: stop reading a client's requests while its replies pile up."""
        waited = 0.0
        while peer.queue.qsize() > SEND_QUEUE // 2:
            if waited >= timeout_s:
                return False
            await asyncio.sleep(0.01)
            waited += 0.01
        return True

    async def _writer(self, conn: str, peer: _Peer) -> None:
        while (msg := await peer.queue.get()) is not None:
            try:
                await peer.ws.send_json(msg)
            except (ConnectionError, RuntimeError):
                return

    def _send(self, conn: str, msg: dict[str, Any]) -> None:
        local = self._locals.get(conn)
        if local is not None:
            local.deliver(msg)
            return
        self._send_socket(conn, msg)

    def _send_socket(self, conn: str, msg: dict[str, Any]) -> None:
        """To this node's socket ``conn`` (a cluster leader may also serve it as a relayed session: not that)."""
        peer = self.peers.get(conn)
        if peer is None:
            return
        if peer.dropping:
            return
        try:
            peer.queue.put_nowait(msg)
        except asyncio.QueueFull:  # a client that does not read is dropped, not buffered forever
            self._drop_slow(conn, peer)

    # ------------------------------------------------------------------ actions
    async def apply(self, actions: list[Action]) -> None:
        """Apply actions in order. SDP offers are answered outside the lock, so one client's slow or
        large negotiation never holds up anyone else's signaling; what followed an offer waits for it."""
        if not _read_only(actions):  # the core changed when it made them: before anything goes out
            self.state_changed()
        while actions:
            follow_up: list[Action] = []
            offer: Send | None = None
            async with self._lock:
                for i, a in enumerate(actions):
                    if isinstance(a, Send) and a.media_leg is not None and a.media_offer is not None:
                        offer, actions = a, actions[i + 1:]
                        break
                    follow_up += await self._apply_one(a)
                else:
                    actions = []
            if offer is not None:
                follow_up += await self._answer_offer(offer)
            if follow_up:
                await self.apply(follow_up)
        if self.core.next_deadline() != self._armed:
            self._timers.set()

    async def _apply_one(self, a: Action) -> list[Action]:
        if self.media is not None and (isinstance(a, AddLeg | UpdateLeg | RemoveLeg | MeterCall) or
                                       (isinstance(a, Send) and a.media_leg is not None and a.media_offer is not None)):
            return await self._apply_media(a)
        if isinstance(a, Send):
            self._send(a.conn, a.message)
        elif isinstance(a, AddLeg):
            try:
                leg = self.engine.add_leg(a.call_id, a.routing)
            except LimitError as exc:  # the core checks first; this is a second line of defence
                log.error("server.mixer_refused_leg", call_id=a.call_id, leg=a.leg, why=str(exc))
                return self.core.media_failed(a.leg)
            self.legs[a.leg], self.leg_keys[leg] = leg, a.leg
        elif isinstance(a, UpdateLeg):
            leg = self.legs.get(a.leg)
            if leg is not None:
                self.engine.set_routing(leg, a.routing)
        elif isinstance(a, RemoveLeg):
            leg = self.legs.pop(a.leg, None)
            if leg is not None:
                self.leg_keys.pop(leg, None)
                if self.gateway is not None:
                    await self.gateway.close_leg(leg)
                self.engine.remove_leg(leg)
        elif isinstance(a, MeterCall):
            self.levels.meter(a.call_id, a.on)
        elif isinstance(a, CloseConnection):
            peer = self.peers.get(a.conn)
            if peer is not None:
                await peer.ws.close(message=a.reason.encode()[:120])
            local = self._locals.pop(a.conn, None)
            if local is not None:
                local.closed(a.reason)
                return self.core.disconnect(a.conn)
        return []

    async def _answer_offer(self, a: Send) -> list[Action]:
        if self.media is not None:
            return await self._apply_media(a)
        msg = dict(a.message)
        leg = self.legs.get(a.media_leg or "")
        if self.gateway is None or leg is None:
            msg["media"] = "unavailable"
            self._send(a.conn, msg)
            return self.core.media_answered(a.media_leg or "")
        try:
            msg["sdp"] = await self.gateway.open_leg(leg, str(self.engine.call_of(leg)), a.media_offer or "")
            if self.legs.get(a.media_leg or "") != leg:  # the leg ended while its offer was being answered
                await self.gateway.close_leg(leg)
                return []
        except MediaError as exc:
            return self._offer_refused(a, msg, exc)
        return self._offer_answered(a, msg)

    def _offer_answered(self, a: Send, msg: dict[str, Any]) -> list[Action]:
        self._send(a.conn, msg)
        return self.core.media_answered(a.media_leg or "")

    def _offer_refused(self, a: Send, msg: dict[str, Any], exc: MediaError) -> list[Action]:
        log.info("server.media_refused", leg=a.media_leg, why=str(exc))
        self._send(a.conn, m.response(msg.get("cseq"), msg.get("method"), 488, f"media refused: {exc}",
                                      call_id=msg.get("call_id")))
        return self.core.media_failed(a.media_leg or "", refused=True)

    async def _apply_media(self, a: AddLeg | UpdateLeg | RemoveLeg | MeterCall | Send) -> list[Action]:
        """Leg actions for media workers: the pool places each call on a worker and forwards them."""
        assert self.media is not None
        if isinstance(a, AddLeg):
            if not self.media.add_leg(a.call_id, a.leg, a.routing):
                return self.core.media_failed(a.leg)
        elif isinstance(a, UpdateLeg):
            self.media.update_leg(a.call_id, a.leg, a.routing)
        elif isinstance(a, RemoveLeg):
            self.media.remove_leg(a.call_id, a.leg)
        elif isinstance(a, MeterCall):
            self.media.meter_call(a.call_id, a.on)
        else:
            msg = dict(a.message)
            try:
                msg["sdp"] = await self.media.answer(str(msg.get("call_id") or self._call_of_leg(a.media_leg)),
                                                     a.media_leg or "", a.media_offer or "")
            except MediaError as exc:
                return self._offer_refused(a, msg, exc)
            return self._offer_answered(a, msg)
        return []

    def _levels_tick(self, stats: object) -> None:
        """Every tick (in-process media): at the end of a level window, tell the supervised calls' supervisors."""
        got = self.levels.tick()
        if got:
            self._media_levels({str(call): {self.leg_keys[leg]: v for leg, v in legs.items() if leg in self.leg_keys}
                                for call, legs in got.items()})

    def _media_levels(self, calls: dict[str, dict[str, float]]) -> None:
        """Levels by call and core leg id (from this process's meter or a media worker's ``LegLevels``)."""
        out: list[Action] = []
        for call_id, levels in calls.items():
            out += self.core.leg_levels(call_id, levels)
        for a in out:  # only NOTIFYs: nothing to order against leg changes, so no lock
            if isinstance(a, Send):
                self._send(a.conn, a.message)

    def _call_of_leg(self, leg: str | None) -> str:
        for call in self.core.calls.values():
            if any(p.leg == leg for p in call.participants.values()):
                return call.call_id
        return ""

    def _media_leg_lost(self, leg: str, reason: str) -> None:
        asyncio.get_running_loop().create_task(self.apply(self.core.media_failed(leg)))

    def _media_calls_lost(self, call_ids: list[str], reason: str) -> None:
        asyncio.get_running_loop().create_task(self.apply(self.core.media_lost(call_ids, reason)))

    def _leg_lost(self, leg: int) -> None:
        key = self.leg_keys.get(leg)
        if key is not None:
            asyncio.get_running_loop().create_task(self.apply(self.core.media_failed(key)))


def _read_only(actions: list[Action]) -> bool:
    """Only answers to OPTIONS (a liveness probe): nothing a cluster's next leader needs to know."""
    return all(isinstance(a, Send) and a.message.get("type") == "response" and a.message.get("method") == "OPTIONS"
               for a in actions)


@contextlib.asynccontextmanager
async def serving(server: BargeinServer, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Run ``server`` inside the current event loop (tests, embedding); yields its base URL."""
    runner = web.AppRunner(server.app())
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()
