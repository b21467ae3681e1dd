"""/healthz and /metrics aggregate the media workers: each worker's deadline misses and inbound buffer
counters, and totals that keep the counters of legs that left and of workers that died.

A real call (aiortc peers over loopback) on one of two workers; short SIGSTOP pulses make that worker's
ticks late (deadline misses), and a customer whose packets vanish makes its inbound buffer conceal.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from bargein.signaling.client import place_call, sign_in
from bargein.signaling.media.pool import WorkerPool
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings
from bargein.signaling.webrtc_client import ClientLeg
from helpers.media import vanish
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.slow
SLOW = 60.0


async def until(check: Callable[[], Awaitable[Any]], what: str, tries: int = 300) -> Any:
    """Poll ``check`` until it returns something truthy (failure guard only: workers push stats each second)."""
    for _ in range(tries):
        if got := await check():
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what}")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_healthz_and_metrics_report_each_workers_inbound_buffers_and_deadline_misses() -> None:
    pool = WorkerPool(2, silent_peer_s=30.0)
    srv = BargeinServer(Settings(port=0), media=pool)
    async with serving(srv) as base, aiohttp.ClientSession() as session:
        async def health() -> dict[str, Any]:
            return await (await session.get(base + "/healthz")).json()

        async def metrics() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
            return samples(await (await session.get(base + "/metrics")).text())

        agent = await sign_in(base + "/ws", "agent1", session=session, state="available", timeout=SLOW)
        customer = await sign_in(base + "/ws", "customer1", session=session, timeout=SLOW)
        cust_leg, agent_leg = ClientLeg(500.0), ClientLeg(750.0)
        call = await place_call(customer, agent, customer_media=cust_leg, agent_media=agent_leg)
        await asyncio.gather(cust_leg.fresh(25, timeout=SLOW), agent_leg.fresh(25, timeout=SLOW))
        host = pool.worker_of(call)
        assert host is not None
        other = next(w for w in pool.workers if w != host)

        # late ticks on the host only: short stops (a long one would be skipped over, not missed)
        pid = pool.workers[host].proc.pid
        for _ in range(50):
            os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(0.05)
            os.kill(pid, signal.SIGCONT)
            await asyncio.sleep(0.3)
            if any(s.deadline_misses for s in await pool.stats()):
                break
        vanish(cust_leg)  # the customer's packets stop: its inbound buffer conceals every tick

        def by_worker(h: dict[str, Any]) -> dict[str, dict[str, Any]]:
            return {w["worker"]: w for w in h["media_workers"]["workers"]}

        async def concealing() -> dict[str, Any] | None:
            h = await health()
            return h if by_worker(h)[host]["inbound"].get("concealed", 0) > 0 else None

        h = await until(concealing, "the vanished leg's buffer conceals")
        mine, theirs = by_worker(h)[host], by_worker(h)[other]
        assert mine["legs"] == 2 and theirs["legs"] == 0
        assert mine["deadline_misses"] > 0  # (the idle worker may miss a few too on a busy machine)
        assert h["mixer"]["deadline_misses"] == mine["deadline_misses"] + theirs["deadline_misses"]
        inbound = mine["inbound"]
        assert inbound["legs"] == 2 and inbound["received"] > 0 and inbound["played"] > 0
        assert inbound["target"] >= 2 and inbound["depth"] >= 0  # target: one frame plus the measured jitter
        assert {"shrunk", "skipped", "late", "overflow", "resyncs"} <= inbound.keys()
        assert theirs["inbound"]["received"] == 0
        for k, v in inbound.items():  # totals: the sum over workers
            assert h["inbound"][k] == v + theirs["inbound"].get(k, 0), k

        async def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            m = await metrics()
            return m if m.get(("bargein_media_inbound_concealed_total", (("worker", host),)), 0) > 0 else None

        m = await until(scraped, "/metrics shows the host's concealment")
        at = (("worker", host),)
        for name in ("bargein_media_inbound_received_total", "bargein_media_inbound_played_total",
                     "bargein_media_deadline_misses_total", "bargein_inbound_received_total",
                     "bargein_inbound_concealed_total", "bargein_mixer_deadline_misses_total",
                     "bargein_media_inbound_target_frames"):
            assert m.get((name, at), m.get((name, ()), 0)) > 0, name
        assert ("bargein_media_inbound_depth_frames", at) in m
        assert m[("bargein_media_inbound_received_total", (("worker", other),))] == 0

        # counters outlive the legs that left and the worker that hosted them
        assert (await agent.request("BYE", call_id=call))["status"] == 200

        async def closed() -> bool:  # ... and the host has pushed its final counters (kept when it dies)
            pushed = pool.workers[host].stats
            return (await health())["mixer"]["media_legs"] == 0 and pushed is not None and pushed.media_legs == 0

        await until(closed, "the host closes the call's legs")
        before = (await health())["inbound"]
        pool.kill(host, signal.SIGKILL)

        async def replaced() -> bool:
            return pool.replaced == 1 and len(pool.workers) == 2

        await until(replaced, "a replacement worker", tries=1200)
        after = (await health())["inbound"]
        for k in ("received", "played", "concealed"):
            assert after[k] >= before[k] > 0, k
        assert after["legs"] == 0
        for leg in (cust_leg, agent_leg):
            await leg.close()
        await agent.close()
        await customer.close()
