"""The live demo: simulated calls inside a real server, visible to and monitorable by a supervisor."""

import asyncio

import aiohttp
import numpy as np
from bargein.signaling.client import sign_in
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings
from bargein.simulator.demo import DemoCalls

from bargein.app import build_server


async def test_demo_calls_show_in_agents_view_and_can_be_monitored_and_barged() -> None:
    srv = build_server(Settings(port=0, mixer_rate=16000), demo_calls=3, webrtc=False)  # as `bargein serve` wires it
    async with serving(srv) as base:
        async with aiohttp.ClientSession() as session:
            rows: list = []
            for _ in range(100):
                async with session.get(base + "/api/agents?token=supervisor1") as r:
                    rows = [a for a in (await r.json())["agents"] if a["agent"].startswith("demo-agent")]
                if len(rows) == 3 and all(a["state"] == "on-call" for a in rows):
                    break
                await asyncio.sleep(0.05)
            assert len(rows) == 3 and all(a["state"] == "on-call" for a in rows), rows
            call_id = rows[0]["call_id"]
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
            async with session.get(base + "/api/contacts?queue=demo&token=supervisor1") as r:
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
