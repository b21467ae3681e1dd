"""The live demo: simulated calls inside a real server, visible to and monitorable by a supervisor."""

import asyncio

import aiohttp
import numpy as np
from bargein.signaling.client import sign_in
from bargein.signaling.server import BargeinServer, serving
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
            talking: set[str] = set()
            for _ in range(100):  # the call card's indicators: the demo's voices are measured too (failure guard)
                levels = await sup.expect("NOTIFY", event="levels", timeout=30)
                assert levels["call_id"] == call_id
                talking |= {r["role"] for r in levels["levels"] if r["talking"]}
                if {"agent", "customer"} <= talking:
                    break
            assert {"agent", "customer"} <= talking and "supervisor" not in talking
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


async def test_demo_calls_end_as_scheduled_call_after_call() -> None:
    """Any demo agent may take any demo customer's call; every call must still end on time (issue 9 item 11)."""
    demo = DemoCalls(4, handle_s=(0.05, 0.3), gap_s=(0.0, 0.05), seed=3)
    srv = BargeinServer(Settings(port=0, mixer_rate=8000), services=[demo])
    async with serving(srv):
        while demo.completed < 60:  # dozens of cycles: each pairing of customers and agents comes up
            await asyncio.sleep(0.05)
            ages = [srv.core.clock() - c.created for c in srv.core.calls.values()]
            assert not ages or max(ages) < 30, "a demo call outlived its handle time"
    assert demo.hangups_refused == 0


async def test_demo_calls_are_recorded(tmp_path) -> None:  # noqa: ANN001
    import av

    srv = build_server(Settings(port=0, mixer_rate=16000, data_dir=tmp_path), demo_calls=2, webrtc=False)
    srv.services[0].handle_s = (4.0, 5.0)  # short calls (but longer than a pause of the demo voices)
    async with serving(srv) as base, aiohttp.ClientSession() as session:
        done: list = []
        for _ in range(600):  # failure guard only: demo calls end after 4-5 s
            await srv.contacts.store.flush()
            async with session.get(base + "/api/contacts?queue=demo-support&token=supervisor1") as r:
                done = [c for c in (await r.json())["contacts"] if c["disconnected"] and c["recording_path"]]
            if done:
                break
            await asyncio.sleep(0.1)
        assert done, "no finished demo call"
        assert await asyncio.to_thread(srv.contacts.recorder.writer.sync)
        with av.open(str(tmp_path / done[0]["recording_path"])) as f:
            pcm = np.concatenate([fr.to_ndarray().reshape(2, -1) for fr in f.decode(audio=0)], axis=1)
        windows = pcm[:, : pcm.shape[1] // 4800 * 4800].reshape(2, -1, 4800)  # 100 ms at 48 kHz
        loudest = np.sqrt(np.mean(np.square(windows), axis=2)).max(axis=1)
        assert (loudest > 0.01).all(), loudest  # the demo agent talks on the left, the demo customer on the right
