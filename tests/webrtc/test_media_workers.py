"""Media worker processes behind a real server: real aiortc peers over loopback, routing proved by tones.

Two calls land on two different worker processes; each party hears only its own call, and
monitor / barge / coach work on either worker. A worker killed with SIGKILL ends its calls with a
reason to every party and supervisor, the other worker's call goes on, a new worker replaces the
dead one and a new call succeeds. A worker that stops answering (SIGSTOP) is found by its missing
heartbeat, killed and replaced the same way.
"""

from __future__ import annotations

import asyncio
import signal
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from bargein.signaling.client import place_call, sign_in
from bargein.signaling.media.pool import WORKER_DIED, WorkerPool
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings
from bargein.signaling.webrtc_client import ClientLeg

pytestmark = pytest.mark.slow

HEARD, SILENT = -40.0, -50.0  # tones are sent at -12 dBFS; -40 leaves room for gaps when the machine is busy
# one tone per leg across both calls, so a leak between calls would show
TONES = {1: {"customer": 500.0, "agent": 750.0, "supervisor": 1650.0},
         2: {"customer": 1100.0, "agent": 1400.0, "supervisor": 2200.0}}


@pytest.fixture
async def server() -> AsyncIterator[tuple[BargeinServer, str]]:
    srv = BargeinServer(Settings(port=0), media=WorkerPool(2, silent_peer_s=10.0))  # generous: a busy machine stalls peers
    async with serving(srv) as base:
        yield srv, base


SLOW = 60.0  # request timeout: worker start-up and negotiation are slow on a busy machine


async def live_call(session: aiohttp.ClientSession, base: str, n: int) -> tuple[dict, dict, str]:
    agent = await sign_in(base + "/ws", f"agent{n}", session=session, state="available", timeout=SLOW)
    customer = await sign_in(base + "/ws", f"customer{n}", session=session, timeout=SLOW)
    cust_leg, agent_leg = ClientLeg(TONES[n]["customer"]), ClientLeg(TONES[n]["agent"])
    call_id = await place_call(customer, agent, customer_media=cust_leg, agent_media=agent_leg)
    return {"ws": customer, "leg": cust_leg}, {"ws": agent, "leg": agent_leg}, call_id


async def supervise(session: aiohttp.ClientSession, base: str, call_id: str, token: str, tone: float) -> dict:
    ws = await sign_in(base + "/ws", token, session=session, timeout=SLOW)
    leg = ClientLeg(tone)
    r = await ws.invite(f"call:{call_id}", media=leg)
    assert r["status"] == 200, r
    return {"ws": ws, "leg": leg}


async def hears(legs: dict[tuple[int, str], dict]) -> dict[tuple[int, str], set[tuple[int, str]]]:
    """Which of every leg's tone (both calls) each listener hears, after fresh audio everywhere
    (an ambiguous level shows as ``(call, "role? -45 dB")``)."""
    await asyncio.gather(*(x["leg"].fresh(30, timeout=90) for x in legs.values()))
    out = {}
    for listener, x in legs.items():
        assert x["leg"].level(TONES[listener[0]][listener[1]]) < SILENT, f"{listener} hears itself"
        heard = set()
        for speaker in legs:
            if speaker == listener:
                continue
            db = x["leg"].level(TONES[speaker[0]][speaker[1]])
            if db > HEARD:
                heard.add(speaker)
            elif db > SILENT:  # neither heard nor silent (gappy audio): never matches a routing table
                heard.add((speaker[0], f"{speaker[1]}? {db:.0f} dB"))
        out[listener] = heard
    return out


async def settles(legs: dict[tuple[int, str], dict], want: dict[tuple[int, str], set[tuple[int, str]]],
                  attempts: int = 20) -> dict[tuple[int, str], set[tuple[int, str]]]:
    """What is heard once audio from before a routing change has drained: on a busy machine the
    receive path may lag by more than one look (failure guard only; a wrong route never settles)."""
    for _ in range(attempts):
        got = await hears(legs)
        if got == want:
            break
    return got


def expected(modes: dict[int, str | None]) -> dict[tuple[int, str], set[tuple[int, str]]]:
    """The routing table of each call (its supervisor in ``modes[call]``, or none), never across calls."""
    out: dict[tuple[int, str], set[tuple[int, str]]] = {}
    for n, mode in modes.items():
        c, a, s = (n, "customer"), (n, "agent"), (n, "supervisor")
        out[c], out[a] = {a}, {c}
        if mode is not None:
            out[s] = {c, a}
            if mode == "barge":
                out[c].add(s)
            if mode in ("barge", "coach"):
                out[a].add(s)
    return out


async def close_all(*parties: dict) -> None:
    for x in parties:
        await x["leg"].close()
        await x["ws"].close()


async def test_calls_on_two_workers_never_hear_each_other_and_supervision_works_on_both(
        server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    pool = srv.media
    assert pool is not None
    async with aiohttp.ClientSession() as session:
        cust1, agent1, call1 = await live_call(session, base, 1)
        cust2, agent2, call2 = await live_call(session, base, 2)
        assert {pool.worker_of(call1), pool.worker_of(call2)} == {"w1", "w2"}  # placed by load: one each
        legs = {(1, "customer"): cust1, (1, "agent"): agent1, (2, "customer"): cust2, (2, "agent"): agent2}
        assert await settles(legs, want := expected({1: None, 2: None})) == want
        health = await (await session.get(base + "/healthz")).json()
        assert health["mixer"]["calls"] == 2 and sorted(w["legs"] for w in health["media_workers"]["workers"]) == [2, 2]
        assert "bargein_media_workers 2.0" in await (await session.get(base + "/metrics")).text()

        # supervision on each worker in turn (one client process carries every leg: keep it small)
        for n, call, other in ((1, call1, 2), (2, call2, None)):
            sup = legs[(n, "supervisor")] = await supervise(session, base, call, f"supervisor{n}", TONES[n]["supervisor"])
            for mode in ("monitor", "barge", "coach", "monitor"):
                r = await sup["ws"].request("INFO", call_id=call, action="mode", mode=mode)
                assert r["status"] == 200, r
                modes = {n: mode} | ({other: None} if other else {})
                assert await settles(legs, want := expected(modes)) == want, (pool.worker_of(call), mode)
            assert (await legs[(n, "agent")]["ws"].request("BYE", call_id=call))["status"] == 200
            ended = await sup["ws"].expect("NOTIFY", event="session-ended")
            assert "agent ended the call" in ended["reason"]
            await close_all(*(legs.pop(k) for k in list(legs) if k[0] == n))
        for _ in range(200):  # failure guard only: the workers apply the removals asynchronously
            if (await pool.health())["mixer"]["legs"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await pool.health())["mixer"]["legs"] == 0 and not pool.call_worker


async def test_killed_worker_ends_its_calls_with_reasons_and_is_replaced(server: tuple[BargeinServer, str]) -> None:
    srv, base = server
    pool = srv.media
    assert pool is not None
    async with aiohttp.ClientSession() as session:
        cust1, agent1, call1 = await live_call(session, base, 1)
        cust2, agent2, call2 = await live_call(session, base, 2)
        sup1 = await supervise(session, base, call1, "supervisor1", TONES[1]["supervisor"])
        await asyncio.gather(cust1["leg"].fresh(10, timeout=30), sup1["leg"].fresh(10, timeout=30))
        victim, survivor = pool.worker_of(call1), pool.worker_of(call2)
        assert victim is not None and victim != survivor
        pid = pool.kill(victim, signal.SIGKILL)

        for party in (cust1, agent1):  # every party is told why, not just "hung up"
            bye = await party["ws"].expect("BYE", call_id=call1)
            assert bye["call_id"] == call1 and WORKER_DIED in bye["reason"]
        ended = await sup1["ws"].expect("NOTIFY", event="session-ended", call_id=call1)
        assert ended["call_id"] == call1 and WORKER_DIED in ended["reason"]
        assert call1 not in srv.core.calls and call2 in srv.core.calls
        records = srv.core.records.as_dict()
        assert any(c["contact_id"] == call1 and c["end_reason"] == WORKER_DIED for c in records["contacts"])

        # the other worker's call goes on undisturbed
        legs = {(2, "customer"): cust2, (2, "agent"): agent2}
        assert await settles(legs, want := expected({2: None})) == want

        for _ in range(1200):  # failure guard only: a new worker process starts (slow on a busy machine)
            if pool.replaced == 1 and len(pool.workers) == 2:
                break
            await asyncio.sleep(0.05)
        assert pool.replaced == 1 and len(pool.workers) == 2 and victim not in pool.workers
        assert all(w.proc.pid != pid for w in pool.workers.values())

        # a new call (same users again) succeeds, on the new worker (it carries the fewest legs)
        await close_all(cust1, agent1, sup1)
        cust3, agent3, call3 = await live_call(session, base, 1)
        assert pool.worker_of(call3) not in (victim, survivor), {w.id: w.legs for w in pool.workers.values()}
        legs = {(1, "customer"): cust3, (1, "agent"): agent3, (2, "customer"): cust2, (2, "agent"): agent2}
        assert await settles(legs, want := expected({1: None, 2: None})) == want
        health = await (await session.get(base + "/healthz")).json()
        assert health["media_workers"]["alive"] == 2 and health["media_workers"]["replaced"] == 1
        await close_all(cust3, agent3, cust2, agent2)


async def test_hung_worker_is_killed_its_calls_end_with_reasons_and_a_new_call_works() -> None:
    # one worker: the hung one hosts the call, and the new call can only go to its replacement
    pool = WorkerPool(1, silent_peer_s=10.0, heartbeat_timeout_s=4.0)
    srv = BargeinServer(Settings(port=0), media=pool)
    async with serving(srv) as base, aiohttp.ClientSession() as session:
        cust, agent, call = await live_call(session, base, 1)
        sup = await supervise(session, base, call, "supervisor1", TONES[1]["supervisor"])
        await asyncio.gather(cust["leg"].fresh(10, timeout=30), sup["leg"].fresh(10, timeout=30))
        hung = pool.workers["w1"]
        pool.kill("w1", signal.SIGSTOP)  # alive, but neither its loop nor its heartbeat runs any more

        for party in (cust, agent):  # told why, exactly as when a worker exits
            bye = await party["ws"].expect("BYE", call_id=call)
            assert WORKER_DIED in bye["reason"]
        ended = await sup["ws"].expect("NOTIFY", event="session-ended", call_id=call)
        assert WORKER_DIED in ended["reason"]
        assert call not in srv.core.calls and pool.hung == 1
        # killed, not left stopped: a stopped process ends on SIGKILL only (the exit code asyncio reports
        # depends on its child watcher, so the test looks at the process table)
        await asyncio.wait_for(hung.proc.wait(), 30)
        assert not Path(f"/proc/{hung.proc.pid}").exists()

        for _ in range(1200):  # failure guard only: a new worker process starts (slow on a busy machine)
            if pool.replaced == 1 and len(pool.workers) == 1:
                break
            await asyncio.sleep(0.05)
        assert pool.replaced == 1 and "w1" not in pool.workers
        await close_all(cust, agent, sup)
        cust2, agent2, call2 = await live_call(session, base, 1)
        assert pool.worker_of(call2) == "w2"
        legs = {(1, "customer"): cust2, (1, "agent"): agent2}
        assert await settles(legs, want := expected({1: None})) == want
        health = await (await session.get(base + "/healthz")).json()
        assert health["media_workers"]["hung"] == 1 and health["media_workers"]["replaced"] == 1
        assert "bargein_media_workers_hung_total 1.0" in await (await session.get(base + "/metrics")).text()
        await close_all(cust2, agent2)


def test_heartbeat_timeout_must_leave_room_for_missed_stats() -> None:
    with pytest.raises(ValueError, match="heartbeat_timeout_s"):
        WorkerPool(1, stats_every_s=1.0, heartbeat_timeout_s=1.5)


async def test_a_bad_message_costs_that_message_not_the_worker() -> None:
    pool = WorkerPool(1)
    pool.attach(lambda leg, why: None, lambda calls, why: None)
    await pool.start()
    try:
        w = pool.workers["w1"]
        w.writer.write(struct.pack(">I", 9) + b"not json!")  # garbage, then a well-framed unknown type
        unknown = b'{"type": "explode", "worker": "w1"}'
        w.writer.write(struct.pack(">I", len(unknown)) + unknown)
        [stats] = await pool.stats()
        assert stats.worker == "w1" and stats.request is not None  # it answered a fresh request
        assert pool.workers["w1"] is w and pool.replaced == 0
    finally:
        await pool.close()
