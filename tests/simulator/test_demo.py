"""The live demo: simulated calls inside a real server, visible to and monitorable by a supervisor."""

import asyncio

import aiohttp
import numpy as np
from bargein.signaling.client import sign_in
from bargein.signaling.server import serving
from bargein.signaling.settings import Settings

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
