"""The server path: drive a running ``bargein serve`` over its WebSocket protocol, some calls over WebRTC.

Simulated customers, agents and supervisors sign in as the server's users (the built-in demo
directory has 5 agents, 5 customers and 3 supervisors, so at most 5 concurrent calls unless the
server has a larger users file). The first ``webrtc_calls`` calls carry audio over real aiortc peer
connections, one distinct tone per leg; every second each of their listeners' received audio is
measured (single-bin DFT) and compared with the routing table of :mod:`bargein.simulator.expected`, then each
supervisor switches mode at random. The other calls exercise signaling only. Mixer timing comes
from the server's ``/healthz``.

A cluster is driven through all its nodes (``server`` lists their URLs, comma-separated): call ``i``'s
agent connects to node ``i``, its customer to node ``i + 1`` and its supervisor to node ``i + 2`` (mod
the node count), so every call's parties sit on different nodes when there are three; the mixer
counters are summed over the nodes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import numpy as np
import structlog
from bargein.signaling.client import Refused, SignalingClient, place_call, sign_in
from bargein.signaling.webrtc_client import ClientLeg

from .expected import AGENT, BARGE, COACH, CUSTOMER, MONITOR, SUPERVISOR, should_hear
from .report import Report
from .scenario import Scenario

log = structlog.get_logger("bargein.simulator.remote")

TONES = {CUSTOMER: 500.0, AGENT: 750.0, SUPERVISOR: 1650.0}
HEARD_DB, SILENT_DB = -30.0, -50.0  # tones are sent at -12 dBFS
MODES = {"monitor": MONITOR, "barge": BARGE, "coach": COACH}
DEMO = {"agent": [f"agent{i}" for i in range(1, 6)], "customer": [f"customer{i}" for i in range(1, 6)],
        "supervisor": [f"supervisor{i}" for i in range(1, 4)]}


class _Call:
    def __init__(self, i: int, customer: SignalingClient, agent: SignalingClient, webrtc: bool) -> None:
        self.i, self.customer, self.agent, self.webrtc = i, customer, agent, webrtc
        self.call_id = ""
        self.legs: dict[int, ClientLeg] = {}
        self.sup: SignalingClient | None = None
        self.sup_name = ""
        self.mode = MONITOR


MIXER_COUNTERS = ("ticks", "deadline_misses", "frames_missing", "frames_dropped")


async def _healthz(session: aiohttp.ClientSession, urls: list[str]) -> dict[str, Any]:
    """The server's ``/healthz``; for a cluster, the nodes' mixer counters summed (tick_ms: the slowest)."""
    docs = []
    for url in urls:
        http = url.replace("ws://", "http://").replace("wss://", "https://").rsplit("/ws", 1)[0]
        async with session.get(http + "/healthz") as r:
            docs.append(await r.json())
    if len(docs) == 1:
        return docs[0]
    mixers = [d.get("mixer", {}) for d in docs]
    mixer: dict[str, Any] = {k: sum(m.get(k, 0) for m in mixers) for k in MIXER_COUNTERS}
    ticks = [m["tick_ms"] for m in mixers if isinstance(m.get("tick_ms"), dict)]
    if ticks:  # the slowest node's figures
        mixer["tick_ms"] = {k: max(t.get(k, 0.0) for t in ticks) for k in ("p50", "p99", "max")}
    return {"mixer": mixer}


def _node(urls: list[str], i: int) -> str:
    return urls[i % len(urls)]


async def _place(session: aiohttp.ClientSession, urls: list[str], i: int, webrtc: bool) -> _Call:
    agent = await sign_in(_node(urls, i), DEMO["agent"][i], session=session, state="available")
    customer = await sign_in(_node(urls, i + 1), DEMO["customer"][i], session=session)
    call = _Call(i, customer, agent, webrtc)
    if webrtc:
        call.legs[CUSTOMER], call.legs[AGENT] = ClientLeg(TONES[CUSTOMER]), ClientLeg(TONES[AGENT])
    try:
        call.call_id = await place_call(customer, agent, customer_media=call.legs.get(CUSTOMER),
                                        agent_media=call.legs.get(AGENT))
    except Refused as exc:
        raise RuntimeError(f"call {i} failed: {exc.status} {exc.reason}") from None
    return call


async def _supervise(session: aiohttp.ClientSession, url: str, call: _Call, name: str) -> bool:
    sup = await sign_in(url, name, session=session)
    leg = ClientLeg(TONES[SUPERVISOR]) if call.webrtc else None
    r = await sup.invite(f"call:{call.call_id}", media=leg)
    if r["status"] != 200:
        if leg:
            await leg.close()
        await sup.close()
        return False
    if leg:
        call.legs[SUPERVISOR] = leg
    call.sup, call.sup_name = sup, name
    return True


def _wrong(call: _Call) -> tuple[int, list[dict[str, object]]]:
    """How many listener/speaker pairs were checked, and those heard when they should not be or not
    heard when they should (in each leg's latest audio)."""
    roles = list(call.legs)
    names = {CUSTOMER: "customer", AGENT: "agent", SUPERVISOR: f"supervisor ({call.mode})"}
    checked, wrong = 0, []
    for li in roles:
        for si in roles:
            if li == si:
                continue
            expected = bool(should_hear(
                np.array(li), np.array(li), np.array(False), np.array(si), np.array(si),
                np.array(call.mode if si == SUPERVISOR else 0), np.array(False), np.array(False), np.array(True)))
            db = call.legs[li].level(TONES[si])
            checked += 1
            if (expected and db < SILENT_DB) or (not expected and db > HEARD_DB):
                wrong.append({"call": call.call_id, "listener": names[li], "speaker": names[si],
                              "expected": "heard" if expected else "silent", "measured_db": round(db, 1)})
    return checked, wrong


async def _check(call: _Call, tick: int, report: Report) -> None:
    """One window of a call. A wrong route stays wrong; a gap in the audio (a starved client or server
    on a loaded machine) does not: a window that looks wrong is measured once more before it counts."""
    checked, wrong = _wrong(call)
    if wrong:
        report.windows_measured_again += 1
        await asyncio.gather(*(leg.fresh(40) for leg in call.legs.values()))
        checked, wrong = _wrong(call)
    report.routing_checks += checked
    report.routing_violations += len(wrong)
    for w in wrong[: max(0, 50 - len(report.violations))]:
        report.violations.append({"tick": tick, **w})


async def _run(sc: Scenario, progress: Callable[[int], object] | None) -> Report:
    assert sc.server is not None
    urls = sc.server_urls
    report = Report(scenario=sc.model_dump(mode="json"), path="server", control="signaling (WebSocket)",
                    clock="realtime", rate=sc.rate)
    n_calls = min(sc.calls, len(DEMO["agent"]))
    if n_calls < sc.calls:
        report.notes.append(f"the server's demo directory has {n_calls} agents: ran {n_calls} calls, not {sc.calls}")
    webrtc = min(sc.webrtc_calls, n_calls)
    rng = np.random.default_rng(sc.seed)
    t0 = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        before = await _healthz(session, urls)
        calls = [await _place(session, urls, i, i < webrtc) for i in range(n_calls)]
        report.calls_started = report.peak_concurrent_calls = len(calls)
        for call, sup in zip(calls, DEMO["supervisor"], strict=False):
            if await _supervise(session, _node(urls, call.i + 2), call, sup):
                report.monitor_sessions += 1
        ticks = int(sc.duration_s / 0.02)
        start = time.monotonic()
        tick = 0
        while (elapsed := time.monotonic() - start) < sc.duration_s:
            media = [c for c in calls if c.webrtc and c.legs]
            await asyncio.gather(*(leg.fresh(40) for c in media for leg in c.legs.values()))
            tick = int((time.monotonic() - start) / 0.02)
            await asyncio.gather(*(_check(c, tick, report) for c in media))
            report.checked_ticks += 1
            for c in calls:  # each supervisor switches mode at random
                if c.sup is None:
                    continue
                mode = str(rng.choice(["monitor", "barge", "coach"]))
                r = await c.sup.request("INFO", call_id=c.call_id, action="mode", mode=mode)
                if r["status"] != 200:
                    report.refuse(r["status"], f"{mode}: {r['reason']}")
                    continue
                if MODES[mode] != c.mode:
                    report.barge_toggles += mode == "barge"
                    report.coach_toggles += mode == "coach"
                    report.monitor_toggles += mode == "monitor"
                c.mode = MODES[mode]
            if progress:
                progress(min(ticks, int(elapsed / 0.02)))
        for k, c in enumerate(calls):  # hang up: half by the agent, half by the customer
            by = c.agent if k % 2 == 0 else c.customer
            await by.request("BYE", call_id=c.call_id)
            report.calls_completed += 1
            if k % 2 == 0:
                report.calls_hung_up_by_agent += 1
            else:
                report.calls_hung_up_by_customer += 1
            if c.sup is not None:
                ended = await c.sup.expect("NOTIFY", event="session-ended")
                report.supervision_ended_by_call_end += 1
                report.supervision_end_reasons_missing += not ended.get("reason")
        after = await _healthz(session, urls)
        for c in calls:
            for leg in c.legs.values():
                await leg.close()
            for client in (c.customer, c.agent, c.sup):
                if client is not None:
                    await client.close()
    mixer_before, mixer_after = before.get("mixer", {}), after.get("mixer", {})
    report.ticks = mixer_after.get("ticks", 0) - mixer_before.get("ticks", 0)
    report.deadline_misses = mixer_after.get("deadline_misses", 0) - mixer_before.get("deadline_misses", 0)
    report.tick_ms = mixer_after.get("tick_ms", report.tick_ms)
    report.frames_missing = mixer_after.get("frames_missing", 0) - mixer_before.get("frames_missing", 0)
    report.frames_dropped = mixer_after.get("frames_dropped", 0) - mixer_before.get("frames_dropped", 0)
    report.simulated_s = sc.duration_s
    report.wall_time_s = round(time.perf_counter() - t0, 2)
    report.notes.append(f"{webrtc} of {n_calls} calls over WebRTC; tick_ms is the server mixer's recent window")
    if len(urls) > 1:
        report.notes.append(f"connections spread over {len(urls)} nodes: agent on node i, customer on i+1, "
                            "supervisor on i+2; mixer counters summed over the nodes")
    return report


def run_remote(sc: Scenario, progress: Callable[[int], object] | None = None) -> Report:
    return asyncio.run(_run(sc, progress))
