"""The node's Redis connection: commands, an ordered outbox, subscriptions that come back, and whether
Redis can be reached right now (every change logged once).

Redis going away must never stop a node: every command goes through :meth:`Bus.run`, which turns a
Redis or socket error into :class:`Unavailable` (its message starts "cluster unavailable:", the reason
clients are given) and marks the bus down until a command succeeds again. Subscriptions reconnect with
a capped backoff and subscribe again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .keys import RECONNECT_MAX_S

log = structlog.get_logger("bargein.cluster")

T = TypeVar("T")
OUTBOX_LIMIT = 10_000  # messages waiting for Redis; past this the oldest are dropped (Redis is down)


class Unavailable(Exception):
    """Redis cannot be reached (or the cluster has no leader): the operation did not happen."""

    def __init__(self, why: str) -> None:
        super().__init__(f"cluster unavailable: {why}")


class Bus:
    def __init__(self, url: str, node: str) -> None:
        self.url, self.node = url, node
        # fail fast (one immediate retry, for a pooled connection that Redis closed): the callers decide
        # what an outage means, and the loops try again each second
        self.redis: aioredis.Redis = aioredis.from_url(
            url, decode_responses=True, socket_connect_timeout=1.0, socket_timeout=2.0, retry=Retry(NoBackoff(), 1))
        self.available = False
        self.why_down = "not connected yet"
        self.up_since: float | None = None  # monotonic time of the last transition to available
        self._handlers: dict[str, Callable[[str], None]] = {}
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=OUTBOX_LIMIT)
        self.dropped = 0  # posted messages dropped because Redis stayed down
        # commands that must reach Redis before what is posted now (the leader's snapshot: handover.py),
        # added at the head of each outbox pipeline; told when what they wrote may be gone (such a
        # pipeline failed, or Redis came back, perhaps restarted empty)
        self.prelude: Callable[[Any], None] | None = None
        self.prelude_lost: Callable[[], None] = lambda: None
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ availability
    def _up(self) -> None:
        if not self.available:
            self.available, self.up_since = True, time.monotonic()
            log.info("cluster.redis_available", node=self.node, url=self.url)
            self.prelude_lost()  # Redis may have restarted empty: what it held is written again

    def _down(self, exc: BaseException) -> None:
        why = f"Redis at {self.url} cannot be reached ({type(exc).__name__}: {exc})"
        if self.available or self.why_down != why:
            log.warning("cluster.redis_unavailable", node=self.node, why=why)
        self.available, self.why_down, self.up_since = False, why, None

    def steady_for(self) -> float:
        """Seconds Redis has been reachable without a failure (0 while down)."""
        return 0.0 if self.up_since is None else time.monotonic() - self.up_since

    async def run(self, op: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Run one Redis operation; :class:`Unavailable` when Redis cannot be reached."""
        try:
            result = await op(self.redis)
        except (RedisError, OSError) as exc:
            self._down(exc)
            raise Unavailable(self.why_down) from exc
        self._up()
        return result

    # ------------------------------------------------------------------ publishing
    async def publish(self, channel: str, payload: str) -> int:
        """Publish now; how many subscribers got it."""
        return await self.run(lambda r: r.publish(channel, payload))

    def post(self, channel: str, payload: str) -> None:
        """Publish later, in order with everything else posted (for callers that cannot wait)."""
        if self._outbox.full():  # Redis is down and the oldest would be stale anyway
            self._outbox.get_nowait()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("cluster.outbox_full", node=self.node, dropped=self.dropped, why=self.why_down)
        self._outbox.put_nowait((channel, payload))

    async def _send_outbox(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 256:
                batch.append(self._outbox.get_nowait())

            async def send(r: aioredis.Redis, batch: list[tuple[str, str]] = batch) -> Any:
                async with r.pipeline(transaction=False) as pipe:
                    if self.prelude is not None:
                        try:
                            self.prelude(pipe)
                        except Exception:  # the messages go without it: an outbox that dies loses them all
                            log.exception("cluster.prelude_failed", node=self.node)
                    for channel, payload in batch:
                        pipe.publish(channel, payload)
                    return await pipe.execute()
            try:
                await self.run(send)
            except Unavailable:
                self.prelude_lost()
                log.warning("cluster.messages_lost", node=self.node, count=len(batch), why=self.why_down)

    # ------------------------------------------------------------------ subscribing
    def subscribe(self, channel: str, handler: Callable[[str], None]) -> None:
        """Call ``handler(payload)`` for every message on ``channel`` (before :meth:`start`)."""
        self._handlers[channel] = handler

    async def _listen(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._handlers)
                self._up()
                backoff = 0.1
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg is None or msg.get("type") != "message":
                        continue
                    handler = self._handlers.get(msg["channel"])
                    if handler is not None:
                        try:
                            handler(msg["data"])
                        except Exception:  # one bad message must not end the subscription
                            log.exception("cluster.handler_failed", node=self.node, channel=msg["channel"])
            except (RedisError, OSError) as exc:
                self._down(exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen(), name="bargein-cluster-listen"),
                       loop.create_task(self._send_outbox(), name="bargein-cluster-outbox")]

    async def flush(self, timeout_s: float = 2.0) -> None:
        """Wait (a little) for posted messages to go out: at shutdown."""
        deadline = time.monotonic() + timeout_s
        while not self._outbox.empty() and time.monotonic() < deadline and self.available:
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        with contextlib.suppress(Exception):
            await self.redis.aclose()
