"""Demo calls for a cluster, driven from outside its nodes (``scripts/cluster``).

A single server's demo runs its simulated parties inside the server and pushes their voices into its
own mixer (``--demo-calls``); in a cluster a call's audio lives on whichever node the leader placed it,
so the demo parties here are ordinary clients instead: call slot ``k`` signs in ``loadagentk`` on node
``k`` and ``loadcustomerk`` on node ``k + 1`` (the nodes run with ``--load-users``), so every call's
parties sit on different nodes. The first ``audio_calls`` slots carry audio over WebRTC (aiortc; the
customer sends a 500 Hz tone, the agent 750 Hz), the others are signaling-only. Each slot has its
own queue (``demok``, only its agent), so the browser's ``agent1``.. and ``customer1``.. keep the
``support`` and ``sales`` queues to themselves. Calls last 20–60 s, are hung up by either side, and
start again a few seconds later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Sequence

import aiohttp
import structlog

from bargein.signaling.client import ClientError, SignalingClient, place_call, sign_in
from bargein.signaling.webrtc_client import ClientLeg

log = structlog.get_logger("bargein.cluster_demo")
CUSTOMER_TONE, AGENT_TONE = 500.0, 750.0
BROWSER_AGENTS = [f"agent{i}" for i in range(1, 6)]  # the demo directory's agents, for people at a browser


def queues_env(slots: int) -> dict[str, str]:
    """``BARGEIN_QUEUES`` for every node: the browser's queues, and one queue per demo slot."""
    queues: dict[str, dict[str, object]] = {"support": {"agents": BROWSER_AGENTS},
                                             "sales": {"agents": BROWSER_AGENTS}}
    for k in range(1, slots + 1):
        queues[f"demo{k}"] = {"agents": [f"loadagent{k}"]}
    return {"BARGEIN_QUEUES": json.dumps(queues)}


async def _slot(k: int, ws_urls: Sequence[str], audio: bool, session: aiohttp.ClientSession,
                rng: random.Random) -> None:
    n = len(ws_urls)
    await asyncio.sleep(rng.uniform(0, 3))  # staggered first calls
    while True:
        agent = customer = None
        legs: list[ClientLeg] = []
        try:
            agent = await sign_in(ws_urls[(k - 1) % n], f"loadagent{k}", session=session, state="available")
            customer = await sign_in(ws_urls[k % n], f"loadcustomer{k}", session=session)
            while True:
                legs = [ClientLeg(CUSTOMER_TONE), ClientLeg(AGENT_TONE)] if audio else []
                call_id = await place_call(customer, agent, to=f"queue:demo{k}", timeout=30,
                                           customer_media=legs[0] if legs else None,
                                           agent_media=legs[1] if legs else None)
                log.info("demo.call_started", slot=k, call_id=call_id, audio=audio)
                await asyncio.sleep(rng.uniform(20, 60))
                by: SignalingClient = agent if rng.random() < 0.5 else customer
                await by.request("BYE", call_id=call_id)
                await _close_legs(legs)
                legs = []
                await asyncio.sleep(rng.uniform(2, 5))
        except (ClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:  # a node restarting, Redis away
            log.warning("demo.slot_failed", slot=k, error=str(exc))
        finally:
            await _close_legs(legs)
            for c in (agent, customer):
                if c is not None:
                    await c.close()
        await asyncio.sleep(3)


async def _close_legs(legs: list[ClientLeg]) -> None:
    for leg in legs:
        with contextlib.suppress(Exception):
            await leg.close()


async def run_demo(ws_urls: Sequence[str], slots: int, audio_calls: int, seed: int = 1) -> None:
    """Run ``slots`` call slots until cancelled."""
    rng = random.Random(seed)
    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(_slot(k, ws_urls, k <= audio_calls, session, random.Random(rng.random())))
                 for k in range(1, slots + 1)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
