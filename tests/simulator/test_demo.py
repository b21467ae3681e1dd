"""The live demo: simulated calls inside a real server, visible to and monitorable by a supervisor."""

import asyncio

import aiohttp
import numpy as np
from bargein.signaling.client import sign_in
from bargein.signaling.server import serving
from bargein.signaling.settings import Settings
from bargein.simulator.demo import AGENT_NAMES, CUSTOMER_NAMES, DEMO_QUEUES, DemoCalls, moments, person
from hypothesis import given
from hypothesis import strategies as st

from bargein.app import build_server


async def test_demo_calls_show_in_agents_view_and_can_be_monitored_and_barged() -> None:
    srv = build_server(Settings(port=0, mixer_rate=16000), demo_calls=3, webrtc=False)  # as `bargein serve` wires it
    async with serving(srv) as base:
        async with aiohttp.ClientSession() as session:
            rows: list = []
            for _ in range(400):  # first calls start staggered: wait for one (failure guard only)
                async with session.get(base + "/api/agents?token=supervisor1") as r:
                    rows = [a for a in (await r.json())["agents"] if a["agent"].startswith("demo-agent")]
                if any(a["state"] == "on-call" for a in rows):
                    break
                await asyncio.sleep(0.05)
            on_call = [a for a in rows if a["state"] == "on-call"]
            assert len(rows) == 3 and on_call, rows
            row = on_call[0]
            # people's names, the customer's name with the call, one of the demo queues
            assert row["display_name"] in AGENT_NAMES and row["customer_name"] in CUSTOMER_NAMES
            assert row["queue"] == DemoCalls.queue_of(int(row["agent"].rsplit("-", 1)[1]) - 1)
            call_id = row["call_id"]
            sup = await sign_in(base + "/ws", "supervisor1", session=session)
            r = await sup.request("INVITE", to=f"call:{call_id}")
            assert r["status"] == 200
            leg = int(srv.engine.legs_of(call_id)[-1])
            await asyncio.sleep(0.3)
            heard = []
            for _ in range(30):
                await srv.clock.wait_tick()
                heard.append(srv.engine.output(leg).copy())
            assert np.abs(np.concatenate(heard)).max() > 1000  # the supervisor hears the demo voices
            assert (await sup.request("INFO", call_id=call_id, action="mode", mode="barge"))["status"] == 200
            await sup.close()


@given(st.integers(0, 2**32 - 1), st.floats(0, 600))
def test_call_moments_switch_on_then_off_within_the_call(seed: int, handle_s: float) -> None:
    plan = moments(np.random.default_rng(seed), handle_s)
    assert plan == sorted(plan)
    for who, action in {(w, a) for _, w, a, _ in plan}:
        steps = [(t, v) for t, w, a, v in plan if (w, a) == (who, action)]
        assert [v for _, v in steps] == [True, False]  # every hold or mute is undone before the call ends
        assert 0 < steps[0][0] <= steps[1][0] <= handle_s
        assert (who, action) in {("agent", "hold"), ("customer", "mute"), ("agent", "mute")}


def test_demo_people_queues_and_handle_times_vary() -> None:
    names = [person(AGENT_NAMES, i) for i in range(2 * len(AGENT_NAMES))]
    assert len(set(names)) == len(names) and names[len(AGENT_NAMES)] == f"{AGENT_NAMES[0]} 2"
    assert {DemoCalls.queue_of(i) for i in range(4)} == set(DEMO_QUEUES) and len(DEMO_QUEUES) == 2
    demo = DemoCalls(10, handle_s=(45.0, 300.0), seed=3)
    times = [demo.handle_time() for _ in range(50)]
    assert all(45.0 <= t <= 300.0 for t in times) and len({round(t) for t in times}) > 10
    plans = [moments(demo.rng, 120.0) for _ in range(50)]
    assert any(any(a == "hold" for _, _, a, _ in p) for p in plans)
    assert any(any(a == "mute" for _, _, a, _ in p) for p in plans)
    assert demo.stagger_s > 0
