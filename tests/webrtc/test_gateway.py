"""The media path without signaling: WebRTCGateway wired straight to a MixerEngine and RealtimeClock,
real aiortc client peers over loopback, and the gateway's parts (paced track, inbound pump) alone."""

from __future__ import annotations

import asyncio
import fractions
from collections.abc import AsyncIterator
from dataclasses import replace

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError
from bargein.mixer import LegRouting, MixerEngine, RealtimeClock, Role, SupervisorMode
from bargein.mixer.tones import level_dbfs, tone
from bargein.signaling.gateway import MediaError
from bargein.signaling.webrtc import OUT_QUEUE, MixedAudioTrack, WebRTCGateway, _Leg
from helpers.gateway_rig import GatewayRig
from helpers.media import vanish

HEARD, SILENT = -30.0, -50.0
CUSTOMER, AGENT, SUPERVISOR = 500.0, 750.0, 1650.0


@pytest.fixture(params=[(16000, True, False), (48000, True, False), (48000, False, False), (48000, True, True)],
                ids=["mixer16k-shared-encode", "mixer48k-shared-encode", "mixer48k-encode-per-leg",
                     "mixer48k-shared-encode-inline"])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[GatewayRig]:
    rate, shared, inline = request.param
    r = GatewayRig(rate, shared_encode=shared, encode_inline=inline)
    r.clock.start()
    yield r
    await r.close()


async def test_media_path_without_signaling(rig: GatewayRig) -> None:
    """Resampled inbound audio reaches the mixer, each leg's mix comes back; the supervisor's mic is
    connected from the start but only heard once the routing says so (no renegotiation)."""
    cust_leg, customer = await rig.join(LegRouting(Role.CUSTOMER), CUSTOMER)
    _, agent = await rig.join(LegRouting(Role.AGENT), AGENT)
    sup_leg, sup = await rig.join(LegRouting(Role.SUPERVISOR, SupervisorMode.MONITOR), SUPERVISOR)
    await asyncio.gather(customer.fresh(30), agent.fresh(30), sup.fresh(30))
    assert customer.level(AGENT) > HEARD and customer.level(SUPERVISOR) < SILENT
    assert agent.level(CUSTOMER) > HEARD and agent.level(SUPERVISOR) < SILENT
    assert sup.level(CUSTOMER) > HEARD and sup.level(AGENT) > HEARD
    assert customer.level(CUSTOMER) < SILENT  # mix-minus
    assert rig.gateway.legs[sup_leg].frames_in > 0  # the monitoring supervisor's mic is flowing
    # every leg receives through its own adaptive buffer, not aiortc's prefetching jitter buffer
    assert all(state.receiver is not None and state.receiver.packets > 0 for state in rig.gateway.legs.values())
    assert all(state.pump is None for state in rig.gateway.legs.values())

    rig.engine.set_routing(sup_leg, replace(rig.engine.routing_of(sup_leg), mode=SupervisorMode.BARGE))
    await asyncio.gather(customer.fresh(30), agent.fresh(30))
    assert customer.level(SUPERVISOR) > HEARD and agent.level(SUPERVISOR) > HEARD

    rig.engine.set_routing(cust_leg, replace(rig.engine.routing_of(cust_leg), muted=True))
    await asyncio.gather(agent.fresh(30), sup.fresh(30))
    assert agent.level(CUSTOMER) < SILENT and sup.level(CUSTOMER) < SILENT
    assert agent.level(SUPERVISOR) > HEARD

    for leg in list(rig.gateway.legs):
        await rig.gateway.close_leg(leg)
    assert not rig.gateway.legs and rig.lost == []  # closing on our side is not a lost peer
    assert (rig.gateway.encodes > 0) == rig.gateway.shared_encode


async def test_listeners_hearing_the_same_mix_share_one_encode() -> None:
    """Two monitoring supervisors hear the same mix: one Opus encode per tick serves both, and both
    still hear the right audio; once one barges their mixes differ and each gets its own stream."""
    rig = GatewayRig(48000)
    rig.clock.start()
    try:
        _, customer = await rig.join(LegRouting(Role.CUSTOMER), CUSTOMER)
        _, agent = await rig.join(LegRouting(Role.AGENT), AGENT)
        sup1_leg, sup1 = await rig.join(LegRouting(Role.SUPERVISOR, SupervisorMode.MONITOR), SUPERVISOR)
        _, sup2 = await rig.join(LegRouting(Role.SUPERVISOR, SupervisorMode.MONITOR), 2200.0)
        await asyncio.gather(sup1.fresh(30), sup2.fresh(30))
        encodes, deliveries = rig.gateway.encodes, rig.gateway.deliveries
        await asyncio.gather(sup1.fresh(30), sup2.fresh(30))
        # 4 legs, 3 distinct mixes: fewer encodes than payloads handed out
        assert (rig.gateway.deliveries - deliveries) >= 4 * (rig.gateway.encodes - encodes) // 3
        assert rig.gateway.deliveries - deliveries > rig.gateway.encodes - encodes
        for sup in (sup1, sup2):
            assert sup.level(CUSTOMER) > HEARD and sup.level(AGENT) > HEARD
        assert sup1.level(2200.0) < SILENT and sup2.level(SUPERVISOR) < SILENT

        rig.engine.set_routing(sup1_leg, replace(rig.engine.routing_of(sup1_leg), mode=SupervisorMode.BARGE))
        await asyncio.gather(customer.fresh(30), sup1.fresh(30), sup2.fresh(30))
        assert sup2.level(SUPERVISOR) > HEARD and customer.level(SUPERVISOR) > HEARD
        assert sup1.level(CUSTOMER) > HEARD and sup1.level(SUPERVISOR) < SILENT
        assert agent.level(2200.0) < SILENT
    finally:
        for c in rig.clients:
            await c.close()
        await rig.gateway.close()
        await rig.clock.stop()


async def test_vanished_peer_is_reported_lost() -> None:
    """A peer that stops sending without closing anything (killed browser) is found by the watchdog."""
    rig = GatewayRig(48000, silent_peer_s=1.0)
    rig.clock.start()
    try:
        _, customer = await rig.join(LegRouting(Role.CUSTOMER), CUSTOMER)
        agent_leg, agent = await rig.join(LegRouting(Role.AGENT), AGENT)
        await asyncio.gather(customer.fresh(10), agent.fresh(10))
        vanish(agent)
        for _ in range(200):  # failure guard only
            if rig.lost:
                break
            await asyncio.sleep(0.05)
        assert rig.lost == [agent_leg]
        assert agent_leg not in rig.gateway.legs and len(rig.gateway.legs) == 1
        assert rig.gateway.lost == 1
    finally:
        for c in rig.clients:
            await c.close()
        await rig.gateway.close()
        await rig.clock.stop()


async def test_mixed_track_queue_is_bounded_and_pts_advance_by_frame() -> None:
    track = MixedAudioTrack(16000, 320)
    frames = [np.full(320, i, np.int16) for i in range(OUT_QUEUE + 2)]
    for f in frames:
        track.feed(f)
    assert track.dropped == 2  # the two oldest made room
    got = [await track.recv() for _ in range(OUT_QUEUE)]
    assert [int(f.to_ndarray()[0, 0]) for f in got] == [2, 3, 4]
    assert [f.pts for f in got] == [0, 320, 640]
    assert all(f.sample_rate == 16000 and f.samples == 320 and f.time_base == fractions.Fraction(1, 16000)
               for f in got)
    pending = asyncio.ensure_future(track.recv())  # nothing due: recv waits for the next tick
    for _ in range(5):
        await asyncio.sleep(0)
    assert not pending.done()
    track.feed(frames[0])
    assert (await asyncio.wait_for(pending, 5)).pts == 960
    pending = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    track.stop()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(pending, 5)


class _OpusLikeTrack(MediaStreamTrack):
    """What aiortc's Opus decoder hands out: s16 stereo 48 kHz frames of 960 samples."""

    kind = "audio"

    def __init__(self, freq: float, n: int, paced: bool = False) -> None:
        super().__init__()
        self.freq, self.n, self.i, self.paced = freq, n, 0, paced

    async def recv(self) -> av.AudioFrame:
        if self.i == self.n:
            raise MediaStreamError
        if self.paced:
            await asyncio.sleep(0.02)
        mono = tone(self.freq, 48000, 960, 0.25, start=self.i * 960)
        frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2)[None, :], format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.i * 960, fractions.Fraction(1, 48000)
        self.i += 1
        return frame


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
async def test_fallback_pump_resamples_and_rechunks_into_mixer_frames(rate: int) -> None:
    """Without the receiver shim, aiortc's decoded frames (paced like a real peer's) go through the same
    adaptive buffer, pulled one per tick right before it."""
    engine = MixerEngine(rate=rate)
    speaker = engine.add_leg("c", LegRouting(Role.CUSTOMER))
    listener = engine.add_leg("c", LegRouting(Role.AGENT))
    gateway = WebRTCGateway()
    gateway.attach(engine, RealtimeClock(engine.tick), lambda leg: None)
    state = _Leg(speaker, None, MixedAudioTrack(rate, engine.n_samples), engine.n_samples)  # type: ignore[arg-type]
    gateway.legs[speaker] = state
    pump = asyncio.ensure_future(gateway._pump(state, _OpusLikeTrack(CUSTOMER, 50, paced=True)))
    heard = []
    for i in range(500):  # bounded: ~1 s of audio needs about 60 ticks
        if pump.done() and not state.inbound.depth:
            break
        await asyncio.sleep(0.02)
        gateway._feed_inputs(i)
        engine.tick()
        assert engine.buffered(speaker) == 0  # the mixer's ring holds only the frame being mixed
        heard.append(engine.output(listener).copy())
    assert pump.done() and not state.inbound.depth
    assert 48 <= state.frames_in <= 50  # 1 s in, 20 ms frames out (the resampler may hold a little back)
    s = state.inbound.stats
    assert s.played + s.shrunk + s.late + s.skipped == s.received  # every frame accounted for
    pcm = np.concatenate(heard[5:])
    assert level_dbfs(pcm, CUSTOMER, rate) > HEARD
    assert level_dbfs(pcm, AGENT, rate) < SILENT


async def test_legs_still_route_when_the_receiver_shim_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An aiortc whose internals moved: install() refuses, the legs read aiortc's track instead."""
    import bargein.signaling.webrtc as webrtc

    monkeypatch.setattr(webrtc, "install", lambda receiver, inbound: False)
    rig = GatewayRig(48000)
    rig.clock.start()
    try:
        _, customer = await rig.join(LegRouting(Role.CUSTOMER), CUSTOMER)
        _, agent = await rig.join(LegRouting(Role.AGENT), AGENT)
        await asyncio.gather(customer.fresh(30), agent.fresh(30))
        assert customer.level(AGENT) > HEARD and agent.level(CUSTOMER) > HEARD
        assert all(state.receiver is None and state.pump is not None for state in rig.gateway.legs.values())
    finally:
        for c in rig.clients:
            await c.close()
        await rig.gateway.close()
        await rig.clock.stop()


async def test_unanswerable_offers_are_refused_without_leaking_a_leg() -> None:
    engine = MixerEngine(rate=48000)
    gateway = WebRTCGateway()
    gateway.attach(engine, RealtimeClock(engine.tick), lambda leg: None)
    leg = engine.add_leg("c", LegRouting(Role.CUSTOMER))
    with pytest.raises(MediaError):
        await gateway.open_leg(leg, "c", "this is not SDP")
    video_only = RTCPeerConnection()
    video_only.addTransceiver("video")
    await video_only.setLocalDescription(await video_only.createOffer())
    with pytest.raises(MediaError, match="no audio"):
        await gateway.open_leg(leg, "c", video_only.localDescription.sdp)
    await video_only.close()
    assert not gateway.legs
    await gateway.close()
