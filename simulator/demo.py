"""Live demo: simulated agent<->customer calls inside a running server (``bargein serve --demo-calls N``).

Each demo agent and customer is a :class:`~bargein.signaling.client.SignalingClient` signed in to the
server in-process (:meth:`~bargein.signaling.server.BargeinServer.open_local`: the protocol without a
socket), so the calls show in the real-time agents view and a supervisor in a browser can monitor, barge and coach
them like any other call. Their voices are voice-like harmonic loops (lower pitch for agents, higher
for customers), pushed into the server's mixer for every tick in one vectorised ``push_many``.

To look like a contact center on a supervisor's screen: demo agents and customers have people's names,
half the agents serve the reserved queue ``demo-support`` and half ``demo-billing`` (each customer calls
the queue of its agent group), first calls start staggered, handle times vary (mostly short, a few long),
and calls have moments: the agent puts the customer on hold, the customer or the agent mutes for a while.
Calls end after their handle time and are replaced by new ones.
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
DEMO_QUEUES = ("demo-support", "demo-billing")
AGENT_NAMES = ("Ava Patel", "Noah Kim", "Mia Rossi", "Liam Chen", "Zoe Martin", "Omar Haddad", "Ella Novak",
               "Lucas Silva", "Sara Lind", "Tom Becker", "Nina Costa", "Ravi Iyer")
CUSTOMER_NAMES = ("Grace Hall", "Ben Ortiz", "Chloe Dubois", "Ethan Wright", "Hana Sato", "Jonas Berg",
                  "Lena Fischer", "Marco Bianchi", "Priya Nair", "Sam O'Neill", "Yara Haddad", "Felix Wood",
                  "Iris Moreau", "Kofi Mensah", "Olga Petrova")


def person(names: tuple[str, ...], i: int) -> str:
    """The i-th name, with a number once the list runs out (Ava Patel, …, Ava Patel 2)."""
    base = names[i % len(names)]
    return base if i < len(names) else f"{base} {i // len(names) + 1}"


def moments(rng: np.random.Generator, handle_s: float) -> list[tuple[float, str, str, bool]]:
    """What happens during one call, as (seconds after answer, who, action, value): a hold the agent puts
    the customer on, a muted moment of the customer or of the agent; each on and off again."""
    out: list[tuple[float, str, str, bool]] = []
    for who, action, chance, length in (("agent", "hold", 0.4, (8.0, 25.0)), ("customer", "mute", 0.35, (4.0, 12.0)),
                                        ("agent", "mute", 0.2, (3.0, 8.0))):
        if rng.random() < chance and handle_s > 20:
            start = float(rng.uniform(5.0, handle_s * 0.7))
            end = min(start + float(rng.uniform(*length)), handle_s - 2.0)
            out += [(start, who, action, True), (end, who, action, False)]
    return sorted(out)


class DemoCalls:
    """A server :class:`~bargein.signaling.server.Service`: ``calls`` demo agents, each in one call at a time."""

    def __init__(self, calls: int, handle_s: tuple[float, float] = (45.0, 300.0), seed: int = 1,
                 gap_s: tuple[float, float] = (1.0, 4.0), stagger_s: float | None = None) -> None:
        if calls < 0:
            raise ValueError("--demo-calls must be >= 0")
        self.n = calls
        self.handle_s, self.gap_s = handle_s, gap_s
        # first calls start apart (never longer apart than the shortest call)
        self.stagger_s = min(30.0, 3.0 * calls, handle_s[0]) if stagger_s is None else stagger_s
        self.answered_by: dict[str, SignalingClient] = {}  # call id -> the demo agent that took it
        self.completed = 0  # demo calls ended as scheduled
        self.hangups_refused = 0  # a scheduled hang-up the server refused (a call that would not end)
        self.rng = np.random.default_rng(seed)
        self.server: BargeinServer | None = None
        self.clients: dict[str, SignalingClient] = {}  # demo user -> its in-process connection
        self.voice: dict[int, tuple[int, int]] = {}  # mixer leg -> (voice, offset)
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = False  # a cancellation swallowed by wait_for (Python 3.11) must not keep a call loop going
        self._arrays: tuple[list[int], np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ service
    async def start(self, server: BargeinServer) -> None:
        self.server = server
        self.bank = VoiceBank(server.engine.rate)
        agents = [f"demo-agent-{i + 1}" for i in range(self.n)]
        for q, queue in enumerate(DEMO_QUEUES):
            server.add_queue(queue, QueueSettings(agents=agents[q::len(DEMO_QUEUES)]))
        loop = asyncio.get_running_loop()
        for i, agent in enumerate(agents):
            customer = f"demo-customer-{i + 1}"
            server.add_user(User(name=agent, token=f"demo-token-{agent}", role="agent", profile="Agent",
                                 display_name=person(AGENT_NAMES, i), queues=[self.queue_of(i)]))
            server.add_user(User(name=customer, token=f"demo-token-{customer}", role="customer",
                                 profile="Customer", display_name=person(CUSTOMER_NAMES, i)))
            for name, state in ((agent, "available"), (customer, None)):
                client = self.clients[name] = await SignalingClient.in_process(server, timeout=30)
                await client.sign_in(f"demo-token-{name}", state=state)
                self.tasks.append(loop.create_task(self._answer(client), name=f"bargein-demo-{name}"))
        server.clock.add_listener(self._on_tick)
        self.tasks += [loop.create_task(self._call_loop(i), name=f"bargein-demo-call-{i + 1}") for i in range(self.n)]
        log.info("demo.started", calls=self.n)

    async def stop(self) -> None:
        self.stopping = True
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
                if msg.get("call_id"):
                    self.answered_by[msg["call_id"]] = client
                await client.respond(msg, 200)

    @staticmethod
    def queue_of(i: int) -> str:
        """Demo agent i serves, and demo customer i calls, this queue (so each queue has a free agent per caller)."""
        return DEMO_QUEUES[i % len(DEMO_QUEUES)]

    def handle_time(self) -> float:
        """Mostly short calls, a few long ones (a skewed draw between the bounds)."""
        lo, hi = self.handle_s
        return lo + (hi - lo) * float(self.rng.beta(1.5, 3.0))

    async def _call_loop(self, i: int) -> None:
        customer = self.clients[f"demo-customer-{i + 1}"]
        await asyncio.sleep(float(self.rng.uniform(0, self.stagger_s)))
        while not customer.closed and not self.stopping:
            try:
                await self._one_call(i, customer)
            except ClientError as exc:  # a demo call going wrong must not stop the others
                log.warning("demo.call_failed", customer=customer.user, why=str(exc))
                await asyncio.sleep(5)

    async def _one_call(self, i: int, customer: SignalingClient) -> None:
        r = await customer.invite(f"queue:{self.queue_of(i)}")
        if r["status"] != 200:
            log.info("demo.call_refused", customer=customer.user, status=r["status"], why=r.get("reason"))
            await asyncio.sleep(5)
            return
        call_id = r["call_id"]
        self._voice_call(call_id, i)
        handle_s = self.handle_time()
        elapsed = 0.0
        for at, who_, action, value in moments(self.rng, handle_s):
            await asyncio.sleep(at - elapsed)
            elapsed = at
            actor = self.answered_by.get(call_id) if who_ == "agent" else customer
            if actor is None:
                continue
            fields = {"target": customer.user} if action == "hold" else {}
            # refused when a supervisor muted them meanwhile, 481 once the call ended: the demo goes on
            await actor.request("INFO", call_id=call_id, action=action, value=value, **fields)
        await asyncio.sleep(max(0.0, handle_s - elapsed))
        # the queue may give the call to any demo agent of its queue: the one that answered it hangs up, or the customer
        agent = self.answered_by.pop(call_id, None)
        who = agent if agent is not None and self.rng.random() < 0.5 else customer
        r = await who.request("BYE", call_id=call_id)  # 481: it already ended (a supervisor dropped the customer)
        if r["status"] not in (200, 481) and who is not customer:
            r = await customer.request("BYE", call_id=call_id)
        if r["status"] in (200, 481):
            self.completed += 1
        else:
            self.hangups_refused += 1
            log.warning("demo.hangup_refused", call_id=call_id, status=r["status"], why=r.get("reason"))
        await asyncio.sleep(float(self.rng.uniform(*self.gap_s)))

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
            frames = self.bank.frames(voices, offsets, stats.index)
            engine.push_many(legs, frames)
            self.server.levels.observe(legs, frames)  # who is talking, for a supervisor's call card
