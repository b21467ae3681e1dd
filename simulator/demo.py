"""Live demo: simulated agent<->customer calls inside a running server (``bargein serve --demo-calls N``).

Each demo agent and customer is a signed-in user of the server's own signaling core (no sockets), so
the calls show in the real-time agents view and a supervisor in a browser can monitor, barge and coach
them like any other call. Their voices are voice-like harmonic loops (lower pitch for agents, higher
for customers), pushed into the server's mixer for every tick in one vectorised ``push_many``. Demo
calls take the reserved queue ``demo`` (served by demo agents only), end after a random handle time and
are replaced by new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog
from bargein.mixer import TickStats
from bargein.signaling.directory import User
from bargein.signaling.settings import QueueSettings

from .voicebank import VoiceBank

if TYPE_CHECKING:
    from bargein.signaling.server import BargeinServer

log = structlog.get_logger("bargein.demo")
DEMO_QUEUE = "demo"


class DemoCalls:
    def __init__(self, calls: int, handle_s: tuple[float, float] = (60.0, 240.0), seed: int = 1) -> None:
        if calls < 0:
            raise ValueError("--demo-calls must be >= 0")
        self.n = calls
        self.handle_s = handle_s
        self.rng = np.random.default_rng(seed)
        self.server: BargeinServer | None = None
        self.cseq: dict[str, int] = {}
        self.waiting: dict[tuple[str, int], asyncio.Future[dict[str, Any]]] = {}
        self.voice: dict[int, tuple[int, int]] = {}  # mixer leg -> (voice, offset)
        self.task: asyncio.Task[None] | None = None
        self._arrays: tuple[list[int], np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ service
    async def start(self, server: BargeinServer) -> None:
        self.server = server
        self.bank = VoiceBank(server.engine.rate)
        names = [f"demo-agent-{i + 1}" for i in range(self.n)]
        server.settings.queues[DEMO_QUEUE] = QueueSettings(agents=names)
        for i, agent in enumerate(names):
            customer = f"demo-customer-{i + 1}"
            self._add_user(agent, "agent", "Agent", f"Demo agent {i + 1}", queues=[DEMO_QUEUE])
            self._add_user(customer, "customer", "Customer", f"Demo customer {i + 1}")
            await self._sign_in(agent)
            await self._sign_in(customer)
            await self._request(agent, "PUBLISH", state="available")
        server.clock.add_listener(self._on_tick)
        self.task = asyncio.get_running_loop().create_task(self._run(names), name="bargein-demo")
        log.info("demo.started", calls=self.n)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.server:
            self.server.clock.remove_listener(self._on_tick)

    # ------------------------------------------------------------------ users and requests
    def _add_user(self, name: str, role: str, profile: str, display: str, queues: list[str] | None = None) -> None:
        assert self.server is not None
        if self.server.directory.user(name) is None:
            self.server.directory.add_user(User(name=name, token=f"demo-token-{name}", role=role,  # type: ignore[arg-type]
                                                profile=profile, display_name=display, queues=queues))

    def _conn(self, name: str) -> str:
        return f"demo:{name}"

    async def _sign_in(self, name: str) -> None:
        assert self.server is not None
        self.server.local[self._conn(name)] = lambda msg, n=name: self._on_message(n, msg)
        await self.server.apply(self.server.core.connect(self._conn(name)))
        r = await self._request(name, "REGISTER", token=f"demo-token-{name}")
        assert r["status"] == 200, r

    async def _request(self, name: str, method: str, **fields: Any) -> dict[str, Any]:
        assert self.server is not None
        cseq = self.cseq[name] = self.cseq.get(name, 0) + 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[(name, cseq)] = fut
        await self.server.apply(self.server.core.handle(self._conn(name), {"method": method, "cseq": cseq, **fields}))
        try:
            return await asyncio.wait_for(fut, 30)
        finally:
            self.waiting.pop((name, cseq), None)

    def _on_message(self, name: str, msg: dict[str, Any]) -> None:
        if msg.get("type") == "response":
            fut = self.waiting.get((name, msg["cseq"]))
            if fut is not None and not fut.done() and msg["status"] >= 200 and msg["status"] != 183:
                fut.set_result(msg)
        elif msg.get("method") == "INVITE":  # demo agents answer at once
            reply = {"type": "response", "method": "INVITE", "cseq": msg["cseq"], "status": 200,
                     "call_id": msg["call_id"]}
            assert self.server is not None
            asyncio.get_running_loop().create_task(self.server.apply(
                self.server.core.handle(self._conn(name), reply)))

    # ------------------------------------------------------------------ calls
    async def _run(self, agents: list[str]) -> None:
        await asyncio.gather(*(self._call_loop(i) for i in range(len(agents))))

    async def _call_loop(self, i: int) -> None:
        assert self.server is not None
        agent, customer = f"demo-agent-{i + 1}", f"demo-customer-{i + 1}"
        await asyncio.sleep(float(self.rng.uniform(0, 1.0)))
        while True:
            r = await self._request(customer, "INVITE", to=f"queue:{DEMO_QUEUE}")
            if r["status"] != 200:
                log.info("demo.call_refused", customer=customer, status=r["status"], why=r.get("reason"))
                await asyncio.sleep(5)
                continue
            call_id = r["call_id"]
            self._voice_call(call_id, i)
            await asyncio.sleep(float(self.rng.uniform(*self.handle_s)))
            if call_id in self.server.core.calls:
                who = agent if self.rng.random() < 0.5 else customer
                await self._request(who, "BYE", call_id=call_id)
            await asyncio.sleep(float(self.rng.uniform(1.0, 4.0)))

    def _voice_call(self, call_id: str, i: int) -> None:
        assert self.server is not None
        engine = self.server.engine
        for leg in engine.legs_of(call_id):
            role = engine.routing_of(leg).role.value
            voice = (i % 3) if role == "agent" else 3 + (i % 3)  # low pitches for agents, high for customers
            self.voice[leg] = (voice, int(self.rng.integers(0, self.bank.frames_per_loop)))
        self._arrays = None

    def _on_tick(self, stats: TickStats) -> None:
        """Queue next tick's frame for every demo leg (one gather, one push_many)."""
        assert self.server is not None
        engine = self.server.engine
        if self._arrays is None or not all(map(engine.has_leg, self._arrays[0])):
            self.voice = {leg: v for leg, v in self.voice.items() if engine.has_leg(leg)}
            legs = list(self.voice)
            voices = np.array([self.voice[leg][0] for leg in legs], dtype=np.int64)
            offsets = np.array([self.voice[leg][1] for leg in legs], dtype=np.int64)
            self._arrays = (legs, voices, offsets)
        legs, voices, offsets = self._arrays
        if legs:
            engine.push_many(legs, self.bank.frames(voices, offsets, stats.index))
