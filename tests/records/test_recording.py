"""Call recordings through the real server: who is on which channel in each phase (FFT of the decoded
OGG file), and failing disks that stop only the recording."""

import asyncio
import errno
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest
from bargein.mixer import TickStats
from bargein.mixer.tones import FULL_SCALE, tone
from bargein.signaling.client import SignalingClient, place_call, sign_in
from bargein.signaling.recorder import RecordingWriter
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import QueueSettings, Settings

TONE = {"customer": 500.0, "agent": 750.0, "supervisor": 1650.0}
PRESENT, ABSENT = -30.0, -50.0  # tones go in at -14 dBFS; Opus keeps them within a few dB


def level(x: np.ndarray, freq: float, rate: int) -> float:
    """dBFS of ``freq`` in ``x`` (Hann window, so a neighbouring tone does not leak in)."""
    w = np.hanning(x.size)
    amp = 2 * abs(np.sum(x * w * np.exp(-2j * np.pi * freq * np.arange(x.size) / rate))) / w.sum()
    return float(20 * np.log10(max(amp, 1e-9) / FULL_SCALE))


class Voices:
    """Clock listener: every party of the call speaks its own tone; for every recorded tick, notes which
    mode the supervisor was in (the recording has one frame per recorded tick, in order)."""

    def __init__(self, srv: BargeinServer) -> None:
        self.srv = srv
        self.call_id: str | None = None  # the first call that appears
        self.phases: list[str] = []

    def __call__(self, stats: TickStats) -> None:
        srv, engine = self.srv, self.srv.engine
        if self.call_id is None and srv.core.calls:
            self.call_id = next(iter(srv.core.calls))
        call = srv.core.calls.get(self.call_id or "")
        if call is None:
            return
        rec = engine.recording_of(self.call_id) if self.call_id in engine.calls() else None
        parts = {p.user: srv.legs.get(p.leg) for p in call.participants.values()}
        if rec is not None and rec in engine.recording_output()[0]:
            sup = parts.get("supervisor1")
            self.phases.append(engine.routing_of(sup).mode.value if sup is not None else "none")
        legs = [(name, leg) for name, leg in parts.items() if leg is not None]
        n = engine.n_samples
        frames = [tone(TONE[name.rstrip("0123456789")], engine.rate, n, 0.2, start=(stats.index + 1) * n)
                  for name, _ in legs]
        if legs:
            engine.push_many([leg for _, leg in legs], np.stack(frames))


async def answered_call(session: aiohttp.ClientSession, base: str,
                        queue: str = "support") -> tuple[SignalingClient, SignalingClient, str]:
    agent = await sign_in(base + "/ws", "agent1", session=session, state="available")
    customer = await sign_in(base + "/ws", "customer1", session=session)
    return customer, agent, await place_call(customer, agent, to=f"queue:{queue}")


async def ticks(srv: BargeinServer, n: int) -> None:
    for _ in range(n):
        await srv.clock.wait_tick()


def decode(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as f:
        stream = f.streams.audio[0]
        assert stream.codec_context.name == "opus" and stream.codec_context.channels == 2
        pcm = np.concatenate([fr.to_ndarray().reshape(2, -1) for fr in f.decode(stream)], axis=1)
        return pcm.astype(np.float64) * FULL_SCALE, stream.rate


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[tuple[BargeinServer, str]]:
    srv = BargeinServer(Settings(port=0, data_dir=tmp_path))
    async with serving(srv) as base:
        yield srv, base


async def contact_of(srv: BargeinServer, base: str, session: aiohttp.ClientSession) -> dict:
    await srv.contacts.store.flush()
    async with session.get(base + "/api/contacts?limit=1", headers={"Authorization": "Bearer supervisor1"}) as r:
        assert r.status == 200
        (row,) = (await r.json())["contacts"]
    return row


async def test_channels_in_each_phase_monitor_barge_coach(server: tuple[BargeinServer, str], tmp_path: Path) -> None:
    srv, base = server
    async with aiohttp.ClientSession() as session:
        voices = Voices(srv)
        srv.clock.add_listener(voices)
        customer, agent, call_id = await answered_call(session, base)
        await ticks(srv, 50)
        sup = await sign_in(base + "/ws", "supervisor1", session=session)
        assert (await sup.request("INVITE", to=f"call:{call_id}"))["status"] == 200
        await ticks(srv, 50)
        for mode in ("barge", "coach"):
            assert (await sup.request("INFO", call_id=call_id, action="mode", mode=mode))["status"] == 200
            await ticks(srv, 50)
        assert (await agent.request("BYE", call_id=call_id))["status"] == 200
        srv.clock.remove_listener(voices)
        assert await asyncio.to_thread(srv.contacts.recorder.writer.sync)
        row = await contact_of(srv, base, session)
        assert row["call_id"] == call_id and row["recording_error"] is None
        pcm, rate = decode(tmp_path / row["recording_path"])
    assert rate == 48000 and srv.engine.rate == 48000  # one recorded frame = 960 decoded samples
    assert abs(pcm.shape[1] / 960 - len(voices.phases)) < 3  # one frame per recorded tick
    expected_left = {"none": {"agent"}, "monitor": {"agent"}, "barge": {"agent", "supervisor"}, "coach": {"agent"}}
    seen = []
    start = 0
    for i in range(1, len(voices.phases) + 1):  # each run of one phase, without 10 frames at either end
        if i < len(voices.phases) and voices.phases[i] == voices.phases[start]:
            continue
        phase, a, b = voices.phases[start], start + 10, i - 10
        start = i
        if b - a < 10:
            continue
        for ch, want in ((0, expected_left[phase]), (1, {"customer"})):
            x = pcm[ch, a * 960: b * 960]
            levels = {who: level(x, f, rate) for who, f in TONE.items()}
            heard = {who for who, db in levels.items() if db > PRESENT}
            assert heard == want, (phase, "left" if ch == 0 else "right", levels)
            assert all(db < ABSENT for who, db in levels.items() if who not in want), (phase, ch, levels)
        seen.append(phase)
    assert seen == ["none", "monitor", "barge", "coach"]


async def test_queue_record_none_and_one_side(tmp_path: Path) -> None:
    settings = Settings(port=0, data_dir=tmp_path, queues={"support": QueueSettings(record="none"),
                                                           "sales": QueueSettings(record="customer")})
    srv = BargeinServer(settings)
    async with serving(srv) as base, aiohttp.ClientSession() as session:
        customer, agent, call_id = await answered_call(session, base, "support")
        assert srv.engine.recording_of(call_id) is None
        assert (await agent.request("BYE", call_id=call_id))["status"] == 200
        assert (await contact_of(srv, base, session))["recording_path"] is None
        await customer.close()
        await agent.close()
        voices = Voices(srv)
        srv.clock.add_listener(voices)
        customer, agent, call_id = await answered_call(session, base, "sales")
        await ticks(srv, 60)
        assert (await agent.request("BYE", call_id=call_id))["status"] == 200
        srv.clock.remove_listener(voices)
        assert await asyncio.to_thread(srv.contacts.recorder.writer.sync)
        pcm, rate = decode(tmp_path / (await contact_of(srv, base, session))["recording_path"])
    mid = pcm[:, 10 * 960: -10 * 960]
    assert level(mid[1], TONE["customer"], rate) > PRESENT and level(mid[1], TONE["agent"], rate) < ABSENT
    assert level(mid[0], TONE["agent"], rate) < ABSENT  # the agent's side is not recorded


class FullDisk:
    """A sink that fails like a full disk after a few frames."""

    def __init__(self, path: Path, rate: int) -> None:
        self.frames = 0

    def write(self, frames: np.ndarray) -> None:
        self.frames += 1
        if self.frames > 5:
            raise OSError(errno.ENOSPC, "No space left on device")

    def close(self) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


class SlowDisk(FullDisk):
    def write(self, frames: np.ndarray) -> None:
        import time

        time.sleep(0.2)  # far slower than real time: the bounded queue fills

    def close(self) -> None:
        pass


@pytest.mark.parametrize("sink, why", [(FullDisk, "No space left on device"), (SlowDisk, "fell behind")])
async def test_failing_disk_stops_only_the_recording(tmp_path: Path, sink: type, why: str) -> None:
    srv = BargeinServer(Settings(port=0, data_dir=tmp_path))
    srv.contacts.recorder.writer = RecordingWriter(srv.engine.rate, srv.contacts.recorder._error, max_batches=5,
                                          sink_factory=sink)
    async with serving(srv) as base, aiohttp.ClientSession() as session:
        voices = Voices(srv)
        srv.clock.add_listener(voices)
        customer, agent, call_id = await answered_call(session, base)
        for _ in range(200):  # failure guard only: the recording stops within a few ticks
            await ticks(srv, 5)
            if srv.engine.recording_of(call_id) is None:
                break
        assert srv.engine.recording_of(call_id) is None, "the recording did not stop"
        row = await contact_of(srv, base, session)
        assert why in row["recording_error"] and row["disconnected"] is None
        # the call goes on: still in the mixer, both parties still hear each other
        assert call_id in srv.core.calls and len(srv.engine.legs_of(call_id)) == 2
        await ticks(srv, 3)
        legs = {p.user: srv.legs[p.leg] for p in srv.core.calls[call_id].participants.values()}
        assert level(srv.engine.output(legs["agent1"]).astype(float), TONE["customer"], srv.engine.rate) > PRESENT
        sup = await sign_in(base + "/ws", "supervisor1", session=session)  # and can still be monitored
        assert (await sup.request("INVITE", to=f"call:{call_id}", mode="barge"))["status"] == 200
        assert (await agent.request("BYE", call_id=call_id))["status"] == 200
        srv.clock.remove_listener(voices)
        row = await contact_of(srv, base, session)
        assert row["disconnected"] is not None and why in row["recording_error"]


async def test_recording_file_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "recordings").write_text("a file where the recordings folder should be")
    srv = BargeinServer(Settings(port=0, data_dir=tmp_path))
    async with serving(srv) as base, aiohttp.ClientSession() as session:
        customer, agent, call_id = await answered_call(session, base)
        for _ in range(200):  # failure guard only
            await ticks(srv, 5)
            if srv.engine.recording_of(call_id) is None:
                break
        row = await contact_of(srv, base, session)
        assert "could not be created" in row["recording_error"]
        assert call_id in srv.core.calls and srv.engine.recording_of(call_id) is None
        assert (await agent.request("BYE", call_id=call_id))["status"] == 200


@pytest.mark.parametrize("ticks", [1, 7, 10])
def test_a_stopped_recording_keeps_every_tick_handed_over_in_batches(tmp_path: Path, ticks: int) -> None:
    """The recorder hands the writer several ticks at once: stopping a recording mid-batch still writes each of
    its ticks, in order, into its file."""
    from bargein.mixer import LegRouting, MixerEngine, Role
    from bargein.signaling.recorder import CallRecorder

    engine = MixerEngine(rate=48000)
    cust = engine.add_leg("c1", LegRouting(Role.CUSTOMER))
    engine.add_leg("c1", LegRouting(Role.AGENT))
    recorder = CallRecorder(engine)
    recorder.start()
    assert recorder.record("c1", 7, tmp_path / "r.ogg", (True, True)) is None
    for t in range(ticks):
        engine.push(cust, tone(500.0, 48000, 960, 0.02 * (t + 1), start=t * 960))
        engine.tick()
        recorder.on_tick(None)  # type: ignore[arg-type]
    recorder.stop(7)
    assert recorder.writer.sync()
    assert recorder.writer.frames_written == ticks
    recorder.close()
    with av.open(str(tmp_path / "r.ogg")) as c:
        pcm = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    assert abs(pcm.shape[1] - ticks * 960) < 960  # the codec's start-up delay at most
