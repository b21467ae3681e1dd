"""Live demo: simulated agent<->customer calls inside a running server (``bargein serve --demo-calls N``).

Each demo agent and customer is a :class:`~bargein.signaling.client.SignalingClient` signed in to the
server in-process (:meth:`~bargein.signaling.server.BargeinServer.open_local`: the protocol without a
socket), so the calls show in the real-time agents view and a supervisor in a browser can monitor, barge and coach
them like any other call. Their voices are voice-like harmonic loops (lower pitch for agents, higher
for customers), pushed into the server's mixer for every tick in one vectorised ``push_many``. Demo
calls take the reserved queue ``demo`` (served by demo agents only), end after a random handle time and
are replaced by new ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import numpy as np
import structlog
from bargein.mixer import TickStats
from bargein.signaling.client import ClientError, SignalingClient
from bargein.signaling.directory import User
from bargein.signaling.settings import QueueSettings

from .voicebank import VoiceBank

if TYPE_CHECKING:
    from bargein.signaling.server import BargeinServer

log = structlog.get_logger("bargein.demo")
DEMO_QUEUE = "demo"


class DemoCalls:
    """A server :class:`~bargein.signaling.server.Service`: ``calls`` demo agents, each in one call at a time."""

    def __init__(self, calls: int, handle_s: tuple[float, float] = (60.0, 240.0), seed: int = 1) -> None:
        if calls < 0:
            raise ValueError("--demo-calls must be >= 0")
        self.n = calls
        self.handle_s = handle_s
        self.rng = np.random.default_rng(seed)
        self.server: BargeinServer | None = None
        self.clients: dict[str, SignalingClient] = {}  # demo user -> its in-process connection
        self.voice: dict[int, tuple[int, int]] = {}  # mixer leg -> (voice, offset)
        self.tasks: list[asyncio.Task[None]] = []
        self._arrays: tuple[list[int], np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ service
    async def start(self, server: BargeinServer) -> None:
        self.server = server
        self.bank = VoiceBank(server.engine.rate)
        agents = [f"demo-agent-{i + 1}" for i in range(self.n)]
        server.add_queue(DEMO_QUEUE, QueueSettings(agents=agents))
        loop = asyncio.get_running_loop()
        for i, agent in enumerate(agents):
            customer = f"demo-customer-{i + 1}"
            server.add_user(User(name=agent, token=f"demo-token-{agent}", role="agent", profile="Agent",
                                 display_name=f"Demo agent {i + 1}", queues=[DEMO_QUEUE]))
            server.add_user(User(name=customer, token=f"demo-token-{customer}", role="customer",
                                 profile="Customer", display_name=f"Demo customer {i + 1}"))
            for name, state in ((agent, "available"), (customer, None)):
                client = self.clients[name] = await SignalingClient.in_process(server, timeout=30)
                await client.sign_in(f"demo-token-{name}", state=state)
                self.tasks.append(loop.create_task(self._answer(client), name=f"bargein-demo-{name}"))
        server.clock.add_listener(self._on_tick)
        self.tasks += [loop.create_task(self._call_loop(i), name=f"bargein-demo-call-{i + 1}") for i in range(self.n)]
        log.info("demo.started", calls=self.n)

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.tasks.clear()
        for client in self.clients.values():
            await client.close()
        if self.server:
            self.server.clock.remove_listener(self._on_tick)

    # ------------------------------------------------------------------ calls
    async def _answer(self, client: SignalingClient) -> None:
        """Demo agents answer every INVITE at once; BYEs and NOTIFYs need no reply."""
        async for msg in client.notifications():
            if msg.get("method") == "INVITE":
                await client.respond(msg, 200)

    async def _call_loop(self, i: int) -> None:
        agent, customer = self.clients[f"demo-agent-{i + 1}"], self.clients[f"demo-customer-{i + 1}"]
        await asyncio.sleep(float(self.rng.uniform(0, 1.0)))
        while not (agent.closed or customer.closed):
            try:
                await self._one_call(i, agent, customer)
            except ClientError as exc:  # a demo call going wrong must not stop the others
                log.warning("demo.call_failed", customer=customer.user, why=str(exc))
                await asyncio.sleep(5)

    async def _one_call(self, i: int, agent: SignalingClient, customer: SignalingClient) -> None:
        r = await customer.invite(f"queue:{DEMO_QUEUE}")
        if r["status"] != 200:
            log.info("demo.call_refused", customer=customer.user, status=r["status"], why=r.get("reason"))
            await asyncio.sleep(5)
            return
        call_id = r["call_id"]
        self._voice_call(call_id, i)
        await asyncio.sleep(float(self.rng.uniform(*self.handle_s)))
        who = agent if self.rng.random() < 0.5 else customer
        await who.request("BYE", call_id=call_id)  # 481 if the call already ended (a supervisor dropped the customer)
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
