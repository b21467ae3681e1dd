"""Recording when media runs in worker processes: real aiortc peers send a tone each, the worker that
mixes the call writes the stereo file; a worker killed with SIGKILL leaves an error in the record."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest
from bargein.mixer.tones import FULL_SCALE
from bargein.signaling.client import place_call, sign_in
from bargein.signaling.media.pool import WORKER_DIED, WorkerPool
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings
from bargein.signaling.webrtc_client import ClientLeg

pytestmark = pytest.mark.slow
SLOW = 60.0  # worker start-up and negotiation are slow on a busy machine
TONE = {"customer": 500.0, "agent": 750.0}


def level(x: np.ndarray, freq: float, rate: int) -> float:
    w = np.hanning(x.size)
    amp = 2 * abs(np.sum(x * w * np.exp(-2j * np.pi * freq * np.arange(x.size) / rate))) / w.sum()
    return float(20 * np.log10(max(amp, 1e-9) / FULL_SCALE))


async def contact(srv: BargeinServer, base: str, session: aiohttp.ClientSession) -> dict:
    await srv.contacts.store.flush()
    async with session.get(base + "/api/contacts?limit=1", headers={"Authorization": "Bearer supervisor1"}) as r:
        return (await r.json())["contacts"][0]


async def test_worker_records_the_calls_it_mixes(tmp_path: Path) -> None:
    srv = BargeinServer(Settings(port=0, data_dir=tmp_path), media=WorkerPool(1, silent_peer_s=10.0))
    async with serving(srv) as base, aiohttp.ClientSession() as session:
        url = base + "/ws"
        agent = await sign_in(url, "agent1", session=session, state="available", timeout=SLOW)
        customer = await sign_in(url, "customer1", session=session, timeout=SLOW)
        legs = {"customer": ClientLeg(TONE["customer"]), "agent": ClientLeg(TONE["agent"])}
        call_id = await place_call(customer, agent, customer_media=legs["customer"], agent_media=legs["agent"])
        await asyncio.gather(*(leg.fresh(100, timeout=60) for leg in legs.values()))  # 2 s of audio both ways
        assert (await agent.request("BYE", call_id=call_id))["status"] == 200
        row = await contact(srv, base, session)
        assert row["call_id"] == call_id and row["recording_error"] is None
        path = tmp_path / row["recording_path"]
        for _ in range(300):  # failure guard only: the worker closes the file after the call ends
            if path.exists() and path.stat().st_size > 0:
                break
            await asyncio.sleep(0.1)
        # the second call is recorded too; then the worker dies mid-call
        customer2 = await sign_in(url, "customer2", session=session, timeout=SLOW)
        legs2 = {"customer": ClientLeg(TONE["customer"]), "agent": ClientLeg(TONE["agent"])}
        call2 = await place_call(customer2, agent, customer_media=legs2["customer"], agent_media=legs2["agent"])
        assert srv.media is not None
        srv.media.kill(srv.media.worker_of(call2), signal.SIGKILL)
        await agent.expect("BYE", call_id=call2, timeout=SLOW)
        for _ in range(100):  # failure guard only
            row2 = await contact(srv, base, session)
            if row2["recording_error"]:
                break
            await asyncio.sleep(0.1)
        assert row2["call_id"] == call2 and WORKER_DIED in row2["recording_error"]
        for c in (agent, customer, customer2):
            await c.close()
        for leg in (*legs.values(), *legs2.values()):
            await leg.close()
    with av.open(str(path)) as f:
        pcm = np.concatenate([fr.to_ndarray().reshape(2, -1) for fr in f.decode(audio=0)], axis=1) * FULL_SCALE
    mid = pcm[:, pcm.shape[1] // 4: -pcm.shape[1] // 8]
    assert level(mid[0], TONE["agent"], 48000) > -35 and level(mid[0], TONE["customer"], 48000) < -50
    assert level(mid[1], TONE["customer"], 48000) > -35 and level(mid[1], TONE["agent"], 48000) < -50
