"""Contact records survive a restart and a SIGKILL of a real ``bargein serve`` process (embedded SQLite,
and a real PostgreSQL server)."""

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import av
import pytest
from bargein.signaling.client import SignalingClient, place_call, sign_in

pytestmark = pytest.mark.slow
BARGEIN = Path(sys.executable).parent / "bargein"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def bargein_serve(data_dir: Path, log: Path, database_url: str | None = None,
                  **env_vars: str) -> Iterator[tuple[subprocess.Popen, str]]:
    port = free_port()
    env = {**os.environ, "BARGEIN_DATA_DIR": str(data_dir), "BARGEIN_PORT": str(port), **env_vars}
    if database_url is not None:
        env["BARGEIN_DATABASE_URL"] = database_url
    with open(log, "ab") as out:
        proc = subprocess.Popen([str(BARGEIN), "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)


async def ready(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):  # failure guard only: start-up takes a few seconds on a loaded machine
            try:
                async with session.get(base + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"bargein serve did not come up at {base}")


async def supervised_call(session: aiohttp.ClientSession, base: str) -> tuple[list[SignalingClient], str]:
    agent = await sign_in(base + "/ws", "agent1", session=session, state="available")
    customer = await sign_in(base + "/ws", "customer1", session=session)
    call_id = await place_call(customer, agent)
    sup = await sign_in(base + "/ws", "supervisor1", session=session)
    assert (await sup.request("INVITE", to=f"call:{call_id}"))["status"] == 200
    assert (await sup.request("INFO", call_id=call_id, action="mode", mode="barge"))["status"] == 200
    return [agent, customer, sup], call_id


async def contacts(session: aiohttp.ClientSession, base: str) -> list[dict]:
    async with session.get(base + "/api/contacts", headers={"Authorization": "Bearer supervisor1"}) as r:
        assert r.status == 200
        rows = (await r.json())["contacts"]
    out = []
    for row in rows:
        async with session.get(f"{base}/api/contacts/{row['contact_id']}",
                               headers={"Authorization": "Bearer supervisor1"}) as r:
            out.append(await r.json())
    return out


async def test_records_survive_sigkill_and_restart(tmp_path: Path, database_url: str | None) -> None:
    data, log = tmp_path / "data", tmp_path / "serve.log"
    async with aiohttp.ClientSession() as session:
        with bargein_serve(data, log, database_url) as (proc, base):
            await ready(base)
            clients, killed_call = await supervised_call(session, base)
            await asyncio.sleep(1.5)  # the contract: at most the last second is lost
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            for c in clients:
                await c.close()
        with bargein_serve(data, log, database_url) as (proc, base):
            await ready(base)
            (row,) = await contacts(session, base)
            assert row["call_id"] == killed_call and row["agent"] == "agent1" and row["connected"] is not None
            assert row["disconnected"] is None  # the process died mid-call: no end was ever written
            (mon,) = row["monitor_sessions"]
            assert mon["supervisor"] == "supervisor1" and [c["mode"] for c in mon["mode_changes"]] == ["barge"]
            # a call that ends while the server runs, then a clean stop (SIGINT)
            clients, ended_call = await supervised_call(session, base)
            assert (await clients[0].request("BYE", call_id=ended_call))["status"] == 200
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0
            for c in clients:
                await c.close()
        with bargein_serve(data, log, database_url) as (proc, base):
            await ready(base)
            rows = await contacts(session, base)
            assert [r["call_id"] for r in rows] == [ended_call, killed_call]  # newest first; ids restart
            assert rows[0]["contact_id"] != rows[1]["contact_id"]
            assert "agent ended the call" in rows[0]["disconnect_reason"]
            assert rows[0]["monitor_sessions"][0]["end_reason"] is not None
            with av.open(str(data / rows[0]["recording_path"])) as f:  # finished file decodes to the end
                assert sum(fr.samples for fr in f.decode(audio=0)) > 0
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 0
