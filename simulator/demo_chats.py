"""Live demo chats: a few simulated customer<->agent chats inside a running server (``bargein serve
--demo-chats N``), beside the demo calls, so a supervisor in a browser sees each demo agent's chat count,
opens a chat and barges into it like any other.

Each demo customer (an in-process :class:`~bargein.signaling.client.SignalingClient`) chats to the reserved
queue ``demo-chat``; a demo chat agent accepts and answers each customer message after a short pause.
A chat ends after a random time and a new one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

import numpy as np
import structlog
from bargein.signaling.client import ClientError, SignalingClient
from bargein.signaling.directory import User
from bargein.signaling.settings import QueueSettings

if TYPE_CHECKING:
    from bargein.signaling.server import BargeinServer

log = structlog.get_logger("bargein.demo")
DEMO_CHAT_QUEUE = "demo-chat"
CUSTOMER_LINES = ["Hello, my order has not arrived yet.", "It was order 4711.", "Can you check the delivery date?",
                  "Thanks, that helps.", "Is there anything else I need to do?"]
AGENT_LINES = ["Let me look that up for you.", "I can see it in our system.", "It should arrive tomorrow.",
               "You are welcome.", "Nothing else, all set."]


class DemoChats:
    """A server :class:`~bargein.signaling.server.Service`: ``chats`` demo customers, each in one chat at a time,
    served by ``agents`` demo chat agents (several chats each)."""

    def __init__(self, chats: int, agents: int = 2, length_s: tuple[float, float] = (60.0, 180.0),
                 pause_s: tuple[float, float] = (3.0, 8.0), seed: int = 2) -> None:
        if chats < 0:
            raise ValueError("--demo-chats must be >= 0")
        self.n, self.n_agents = chats, max(1, agents)
        self.length_s, self.pause_s = length_s, pause_s
        self.rng = np.random.default_rng(seed)
        self.clients: dict[str, SignalingClient] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.replies: set[asyncio.Task[None]] = set()
        self.completed = 0

    async def start(self, server: BargeinServer) -> None:
        agents = [f"demo-chat-agent-{i + 1}" for i in range(self.n_agents)]
        server.add_queue(DEMO_CHAT_QUEUE, QueueSettings(agents=agents))
        loop = asyncio.get_running_loop()
        users = [(a, "agent", f"Demo chat agent {i + 1}") for i, a in enumerate(agents)]
        users += [(f"demo-chat-customer-{i + 1}", "customer", f"Demo chat customer {i + 1}") for i in range(self.n)]
        for name, role, display in users:
            server.add_user(User(name=name, token=f"demo-token-{name}", role=role,
                                 profile="Agent" if role == "agent" else "Customer", display_name=display,
                                 queues=[DEMO_CHAT_QUEUE] if role == "agent" else None))
            client = self.clients[name] = await SignalingClient.in_process(server, timeout=30)
            await client.sign_in(f"demo-token-{name}", state="available" if role == "agent" else None)
            if role == "agent":
                self.tasks.append(loop.create_task(self._agent(client), name=f"bargein-demo-{name}"))
        self.tasks += [loop.create_task(self._customer(self.clients[f"demo-chat-customer-{i + 1}"]),
                                        name=f"bargein-demo-chat-{i + 1}") for i in range(self.n)]
        log.info("demo.chats_started", chats=self.n, agents=self.n_agents)

    async def stop(self) -> None:
        for t in [*self.tasks, *self.replies]:
            t.cancel()
        for t in [*self.tasks, *self.replies]:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.tasks.clear()
        for client in self.clients.values():
            await client.close()

    async def _agent(self, client: SignalingClient) -> None:
        """Accept every chat; answer each customer message after a pause."""
        async for msg in client.notifications():
            if msg.get("method") == "INVITE":
                await client.respond(msg, 200)
            elif msg.get("method") == "MESSAGE" and msg.get("from") == "customer":
                reply = asyncio.get_running_loop().create_task(self._reply(client, msg))
                self.replies.add(reply)
                reply.add_done_callback(self.replies.discard)

    async def _reply(self, client: SignalingClient, msg: dict) -> None:
        await asyncio.sleep(float(self.rng.uniform(*self.pause_s)) / 2)
        line = AGENT_LINES[int(msg.get("seq", 1)) // 2 % len(AGENT_LINES)]
        with contextlib.suppress(ClientError):
            await client.request("MESSAGE", contact_id=msg["contact_id"], text=line)  # 481 once the chat ended

    async def _customer(self, client: SignalingClient) -> None:
        await asyncio.sleep(float(self.rng.uniform(0, 2.0)))
        while not client.closed:
            try:
                await self._one_chat(client)
            except ClientError as exc:  # a demo chat going wrong must not stop the others
                log.warning("demo.chat_failed", customer=client.user, why=str(exc))
                await asyncio.sleep(5)

    async def _one_chat(self, client: SignalingClient) -> None:
        r = await client.request("INVITE", to=f"queue:{DEMO_CHAT_QUEUE}", channel="chat")
        if r["status"] != 200:
            log.info("demo.chat_refused", customer=client.user, status=r["status"], why=r.get("reason"))
            await asyncio.sleep(5)
            return
        cid = r["contact_id"]
        end = asyncio.get_running_loop().time() + float(self.rng.uniform(*self.length_s))
        i = 0
        while asyncio.get_running_loop().time() < end:
            sent = await client.request("MESSAGE", contact_id=cid, text=CUSTOMER_LINES[i % len(CUSTOMER_LINES)])
            if sent["status"] != 200:
                return  # the chat ended (the agent left)
            i += 1
            await asyncio.sleep(float(self.rng.uniform(*self.pause_s)))
        await client.request("BYE", call_id=cid)
        self.completed += 1  # the agent's replies left in the inbox are dropped by its bound
        await asyncio.sleep(float(self.rng.uniform(*self.pause_s)))
