"""Three nodes, one call: the customer on node n1 (the leader), the agent on n2, the supervisor on n3.

The call's media lives on one node (n2: placed by load) with every party's leg, whatever node holds the
party's socket; monitor, barge and coach are proved by a distinct tone per party; the agents view is the
same on every node.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest
import redis.asyncio as aioredis
from bargein.mixer.tones import FULL_SCALE, level_dbfs
from bargein.signaling.client import place_call, sign_in
from bargein.signaling.webrtc_client import ClientLeg
from helpers.redis_server import RedisServer

from .conftest import start_cluster, without_clocks
from .tones import TONES, expected, settles

pytestmark = pytest.mark.slow
SLOW = 60.0


async def agents_views(session: aiohttp.ClientSession, bases: list[str]) -> list[list[dict]]:
    out = []
    for base in bases:
        async with session.get(base + "/api/agents?token=supervisor1") as r:
            assert r.status == 200, await r.text()
            out.append(without_clocks((await r.json())["agents"]))
    return out


async def recording(session: aiohttp.ClientSession, base: str, data_dir: Path, call_id: str) -> Path:
    for _ in range(600):  # failure guard only: the record, then the file closed by the call's node
        async with session.get(base + "/api/contacts?limit=1&token=supervisor1") as r:
            rows = (await r.json())["contacts"]
        if rows and rows[0]["call_id"] == call_id and rows[0]["recording_path"]:
            assert rows[0]["recording_error"] is None, rows[0]
            path = data_dir / rows[0]["recording_path"]
            if path.exists() and path.stat().st_size > 0:
                return path
        await asyncio.sleep(0.1)
    raise AssertionError(f"no recording of {call_id}")


async def channels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    for _ in range(100):  # failure guard only: the writer may still be finishing the file
        try:
            with av.open(str(path)) as f:
                pcm = np.concatenate([fr.to_ndarray().reshape(2, -1) for fr in f.decode(audio=0)], axis=1)
            break
        except (av.error.FFmpegError, ValueError):
            await asyncio.sleep(0.1)
    mid = pcm[:, pcm.shape[1] // 4: -pcm.shape[1] // 8] * FULL_SCALE
    return mid[0], mid[1]


def level(x: np.ndarray, freq: float) -> float:
    return level_dbfs(x.astype(np.float64), freq, 48000)


async def test_three_nodes_monitor_barge_coach_by_tones(redis_server: RedisServer,
                                                         session: aiohttp.ClientSession) -> None:
    cluster = await start_cluster(redis_server, session, ["n1", "n2", "n3"])
    redis = aioredis.from_url(redis_server.url, decode_responses=True)
    legs: dict[str, ClientLeg] = {}
    try:
        n1, n2, n3 = cluster["n1"], cluster["n2"], cluster["n3"]
        customer = await sign_in(n1.ws, "customer1", session=session, timeout=SLOW)
        agent = await sign_in(n2.ws, "agent1", session=session, state="available", timeout=SLOW)
        legs["customer"], legs["agent"] = ClientLeg(TONES["customer"]), ClientLeg(TONES["agent"])
        call_id = await place_call(customer, agent, customer_media=legs["customer"], agent_media=legs["agent"],
                                   timeout=SLOW)
        host = await redis.get(f"bargein:call:{call_id}")
        assert host == "n2"
        assert await settles(legs, want := expected(None)) == want

        sup = await sign_in(n3.ws, "supervisor1", session=session, timeout=SLOW)
        legs["supervisor"] = ClientLeg(TONES["supervisor"])
        r = await sup.invite(f"call:{call_id}", media=legs["supervisor"], timeout=SLOW)
        assert r["status"] == 200, r
        talking: set[str] = set()  # who is talking, measured on n2, reaches the supervisor on n3
        for _ in range(100):  # failure guard only
            levels = await sup.expect("NOTIFY", event="levels", timeout=SLOW)
            assert levels["call_id"] == call_id
            talking |= {row["user"] for row in levels["levels"] if row["talking"]}
            if {"customer1", "agent1"} <= talking:
                break
        assert {"customer1", "agent1"} <= talking
        for mode in ("monitor", "barge", "coach", "monitor"):
            r = await sup.request("INFO", call_id=call_id, action="mode", mode=mode, timeout=SLOW)
            assert r["status"] == 200, r
            assert await settles(legs, want := expected(mode)) == want, mode

        # every leg (three parties on three nodes) is mixed on the call's node, and only there
        healths = {n.name: await n.health(session) for n in (n1, n2, n3)}
        assert {name: h["mixer"]["legs"] for name, h in healths.items()} == {"n1": 0, "n2": 3, "n3": 0}
        views = await agents_views(session, [n1.base, n2.base, n3.base])
        assert views[0] == views[1] == views[2]
        assert any(a["agent"] == "agent1" and a.get("call_id") == call_id for a in views[0])

        assert (await agent.request("BYE", call_id=call_id, timeout=SLOW))["status"] == 200
        ended = await sup.expect("NOTIFY", event="session-ended", timeout=SLOW)
        assert "agent ended the call" in ended["reason"]
        for _ in range(400):  # failure guard: the node applies the removals asynchronously
            if (await n2.health(session))["mixer"]["legs"] == 0:
                break
            await asyncio.sleep(0.05)
        assert (await n2.health(session))["mixer"]["legs"] == 0
        for c in (customer, agent, sup):
            await c.close()
        # the call's node recorded it (stereo: agent left, customer right) where the leader's record says
        path = await recording(session, n1.base, cluster.data_dir, call_id)
        left, right = await channels(path)
        assert level(left, TONES["agent"]) > -35 and level(left, TONES["customer"]) < -50
        assert level(right, TONES["customer"]) > -35 and level(right, TONES["agent"]) < -50
    finally:
        for leg in legs.values():
            await leg.close()
        await redis.aclose()
        cluster.stop()
