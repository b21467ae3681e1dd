"""WebRTC legs on the server (aiortc): one RTCPeerConnection per leg, audio to and from the mixer.

Inbound: each leg owns its buffering. :class:`~.opus_inbound.OpusInbound` takes the place of aiortc's
prefetching audio jitter buffer in the leg's receiver, decodes each Opus packet as it arrives (mono)
and files numbered 20 ms frames at the mixer rate into the leg's
:class:`~.jitter.AdaptiveJitterBuffer`. Right before every tick (a clock *feeder*) the gateway pulls
one frame per leg and pushes it into the mixer, so the mixer's own input ring never holds more than
the frame being mixed. If the pinned aiortc internals are not there, a task reads aiortc's track
instead and files its frames into the same adaptive buffer.

Direct RTP (default, :mod:`.rtp_direct`): once a leg's DTLS transport is connected, its Opus packets
bypass aiortc's per-packet tasks both ways. After each tick the gateway encodes every group's mix and
sends each leg's packet itself, all legs in one pass (RTP header, the DTLS transport's SRTP session, the
nominated ICE pair's socket); inbound SRTP packets go from the socket straight to the leg's
:class:`~.opus_inbound.OpusInbound`. aiortc keeps ICE, DTLS, RTCP and closing. A leg still connecting gets
no audio (nothing could be sent yet).

The C path (default on media workers, :mod:`.rtp_fast`): with the encode on the loop and the extension built, the
tick's encodes and every leg's RTP header, SRTP protect and ``sendto`` are one C call over a table of legs written
only when legs attach, leave or change groups (a cached send plan, rebuilt when the mixer's routing epoch or the
set of legs moves), and each inbound datagram is unprotected, parsed, counted and decoded in one C call. Without
it (or with the onset probe on) the same work runs in Python.

Shared encode (default): legs that hear exactly the same mix (``MixerEngine.shared_mix_groups``, e.g.
two monitoring supervisors) share one Opus encode per tick. The gateway encodes each group's mix once
(libopus at the mixer rate, mono, :mod:`.libopus`) on the loop (``encode_inline``, media workers) or on one
worker thread in tick order, and hands every leg of the group the same payload.

Fallbacks: when aiortc's internals are not the pinned ones, a leg's payloads go through
:class:`MixedAudioTrack` as ``av.Packet`` s stamped with that leg's own timestamps and aiortc sends them;
with ``shared_encode=False`` each leg's track returns PCM frames and aiortc encodes per leg. The track is
fed from the mixer clock's tick listener into a bounded queue (drop oldest, counted), so ``recv()`` is
paced by the drift-free mixer clock.

A monitoring supervisor's microphone is connected from the start; whether it is heard is decided by
the mixer's routing alone, so barge needs no renegotiation.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import functools
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import structlog
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from bargein.mixer import OutputGather, TickStats

from . import jitter_fast, libopus, rtp_fast
from .gateway import MediaError, MediaGateway
from .ice_consent import keep_consent
from .jitter import INBOUND_COUNTERS, AdaptiveJitterBuffer
from .jitter_fast import FastJitterBuffer
from .levels import LevelMeter
from .onset_trace import OnsetTrace
from .opus_inbound import RTP_RATE, FrameCutter, OpusInbound, install
from .opus_voice import LIVE_APPLICATION, LIVE_BANDWIDTH, LIVE_BIT_RATE, LIVE_COMPLEXITY, voice_options
from .rtp_direct import UNAVAILABLE, DirectRtp
from .sdp import OfferRefused, check_offer

log = structlog.get_logger("bargein.webrtc")

OUT_QUEUE = 3  # frames; a consumer further behind loses the oldest
SILENT_PEER_S = 5.0  # browsers send audio continuously: this long without a packet means the peer is gone
CONNECT_GRACE_S = 20.0  # time to finish ICE/DTLS before the first packet


def no_ice_servers() -> RTCConfiguration:
    """Host candidates only: nothing leaves this machine (aiortc's default would ask a public STUN server)."""
    return RTCConfiguration(iceServers=[])


class MixedAudioTrack(MediaStreamTrack):
    """Outgoing audio of one leg: the mixer's output for that leg, one frame (PCM) or one encoded
    Opus payload (bytes, from a shared encode) per tick."""

    kind = "audio"

    def __init__(self, rate: int, samples: int) -> None:
        super().__init__()
        self.rate, self.samples = rate, samples
        self.time_base = fractions.Fraction(1, rate)
        self._queue: deque[np.ndarray | bytes] = deque(maxlen=OUT_QUEUE)
        self._marks: deque[bool] = deque(maxlen=OUT_QUEUE)  # onset probe: which queued items start a burst
        self._ready = asyncio.Event()
        self._pts = 0
        self.dropped = 0
        self.on_sent: Callable[[], None] | None = None  # called when a marked item goes to aiortc

    def feed(self, item: np.ndarray | bytes, mark: bool = False) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(item)
        self._marks.append(mark)
        self._ready.set()

    async def recv(self) -> av.AudioFrame | av.Packet:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        pcm = self._queue.popleft()
        if self._marks.popleft() and self.on_sent is not None:
            self.on_sent()
        if isinstance(pcm, bytes):  # already encoded (shared encode): aiortc packs it as it is
            packet = av.Packet(pcm)
            packet.pts, packet.time_base = self._pts, self.time_base
            self._pts += self.samples
            return packet
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.samples)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate = self.rate
        frame.pts = self._pts
        frame.time_base = self.time_base
        self._pts += self.samples
        return frame

    def stop(self) -> None:
        super().stop()
        self._ready.set()


class _GroupEncoder:
    """One Opus encoder for a group of legs that hear the same mix (used on the encode thread only): libopus
    directly (:mod:`.libopus`), PyAV's encoder when that library is not found."""

    def __init__(self, rate: int) -> None:
        self.rate, self.pts = rate, 0
        self.codec: av.CodecContext | None = None
        self.opus: libopus.Encoder | None = None
        if libopus.available():
            self.opus = libopus.Encoder(rate, 1, bit_rate=LIVE_BIT_RATE, complexity=LIVE_COMPLEXITY,
                                        max_bandwidth=LIVE_BANDWIDTH, application=LIVE_APPLICATION)
            return
        self.codec = av.CodecContext.create("libopus", "w")
        self.codec.format, self.codec.layout, self.codec.sample_rate = "s16", "mono", rate
        self.codec.bit_rate = LIVE_BIT_RATE
        self.codec.options = voice_options()
        self.codec.time_base = fractions.Fraction(1, rate)

    def encode(self, pcm: np.ndarray) -> list[bytes]:
        if self.opus is not None:
            return [self.opus.encode(pcm)]
        assert self.codec is not None
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = self.rate, self.pts, self.codec.time_base
        self.pts += len(pcm)
        return [bytes(p) for p in self.codec.encode(frame)]


class _SendPlan:
    """Who hears which encode this tick, for the C path: rebuilt only when ``key`` (the mixer's routing epoch, the
    gateway's leg epoch) moves, or every tick while a leg is still connecting (``pending``)."""

    def __init__(self, key: tuple[int, int], pending: bool, groups: list[frozenset[int]], encoders: np.ndarray,
                 mixes: OutputGather, fast_legs: int, slow: list[tuple[int, int]]) -> None:
        self.key, self.pending, self.groups, self.encoders = key, pending, groups, encoders
        self.mixes, self.fast_legs, self.slow = mixes, fast_legs, slow  # mixes: one leg's mix per group


class _FeedPlan:
    """The legs' C buffers in one array for :func:`~.jitter_fast.pop_many` (rebuilt when ``key``, the mixer's
    routing epoch and the gateway's leg epoch, moves). ``mixed``: the legs the mixer has (the others' buffers are
    still pulled, and their frames dropped, as in the Python feed)."""

    def __init__(self, key: tuple[int, int], legs: dict[int, _Leg], has_leg: Callable[[int], bool],
                 samples: int) -> None:
        fast = [(leg, state.inbound) for leg, state in legs.items() if isinstance(state.inbound, FastJitterBuffer)]
        self.key = key
        self.legs = np.array([leg for leg, _ in fast], np.int64)
        self.buffers = np.array([buf.address for _, buf in fast], np.int64)
        self.mixed = np.array([has_leg(leg) for leg, _ in fast], bool)
        self.all_mixed = bool(self.mixed.all())
        self.frames = np.zeros((len(fast), samples), np.int16)
        self.got = np.zeros(len(fast), np.uint8)
        self.refs = [buf for _, buf in fast]  # the buffers stay alive while their addresses are used


class _Leg:
    def __init__(self, leg: int, pc: RTCPeerConnection, track: MixedAudioTrack, samples: int) -> None:
        self.leg, self.pc, self.track = leg, pc, track
        # the same buffer in C where it was built (the gateway's feed then pulls every leg in one call)
        self.inbound: AdaptiveJitterBuffer | FastJitterBuffer = \
            FastJitterBuffer(samples) if jitter_fast.available() else AdaptiveJitterBuffer(samples)
        self.receiver: OpusInbound | None = None  # None: the fallback pump reads aiortc's track
        # the direct RTP path once DTLS is up (None until then; UNAVAILABLE: aiortc's own path)
        self.direct: DirectRtp | None = None
        self.pump: asyncio.Task[None] | None = None
        self.opened = time.monotonic()
        self._pump_last_in: float | None = None
        self.fast_refused = False  # its direct path could not go on the C path: Python sends it

    @property
    def last_in(self) -> float | None:
        return self.receiver.last_arrival if self.receiver is not None else self._pump_last_in

    @property
    def frames_in(self) -> int:
        return self.inbound.received


class WebRTCGateway(MediaGateway):
    """``silent_peer_s``: a leg whose peer sent no audio for this long is lost (like a BYE);
    ``connect_grace_s``: how long a new leg may take to deliver its first packet."""

    def __init__(self, silent_peer_s: float = SILENT_PEER_S, connect_grace_s: float = CONNECT_GRACE_S,
                 shared_encode: bool = True, encode_inline: bool = False) -> None:
        self.legs: dict[int, _Leg] = {}
        self.shared_encode = shared_encode
        self.encode_inline = encode_inline  # encode on the loop: a media worker saves the thread hand-off
        self.encodes = 0  # Opus encodes done by the shared encoder (one per group and tick)
        self.deliveries = 0  # encoded payloads handed to legs (> encodes when legs share)
        self._encoders: dict[frozenset[int], _GroupEncoder] = {}  # touched on the encode thread only
        self._encode_pool: ThreadPoolExecutor | None = None
        self._encode_failed = False
        # the C path (media workers): encode + send of every leg in one call per tick
        self._table = rtp_fast.SendTable() if encode_inline and shared_encode and rtp_fast.available() else None
        self._plan: _SendPlan | None = None
        self._legs_epoch = 0  # moves on whenever a leg opens, closes or leaves the C path
        self._feed: _FeedPlan | None = None  # the C buffers' feed (jitter_fast)
        self.silent_peer_s, self.connect_grace_s = silent_peer_s, connect_grace_s
        self.lost = 0  # legs freed because their peer closed, failed or went silent
        self.why_lost: dict[int, str] = {}  # ... and why (on_leg_lost's callee pops it)
        self._listening = False
        self._tasks: set[asyncio.Task[None]] = set()  # lost-peer clean-ups in flight (kept referenced)
        self._closed_inbound = dict.fromkeys(INBOUND_COUNTERS, 0)  # counters of legs that left (inbound_totals)
        self.trace = OnsetTrace.from_env()  # opt-in latency probe (benchmarks.webrtc_latency --budget)
        self.meter: LevelMeter | None = None  # sees every frame pushed into the mixer (talking indicators)

    # ------------------------------------------------------------------ gateway interface
    async def open_leg(self, leg: int, call_id: str, offer_sdp: str) -> str:
        try:  # an agent's answer-with-offer reaches here without the request-side check
            check_offer(offer_sdp)
        except OfferRefused as exc:
            raise MediaError(str(exc)) from None
        if not self._listening:
            self.clock.add_feeder(self._feed_inputs)
            self.clock.add_listener(self._on_tick)
            self._listening = True
        if leg in self.legs:  # a new offer for a leg replaces its old peer
            await self.close_leg(leg)
        pc = RTCPeerConnection(no_ice_servers())
        track = MixedAudioTrack(self.engine.rate, self.engine.n_samples)
        state = _Leg(leg, pc, track, self.engine.n_samples)
        self.legs[leg] = state
        self._legs_epoch += 1
        if self.trace is not None:
            track.on_sent = functools.partial(self._sent_probe, leg)

        remote: list[MediaStreamTrack] = []

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:  # fires inside setRemoteDescription
            if track.kind == "audio":
                remote.append(track)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("webrtc.connection_state", leg=leg, call_id=call_id, state=pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await self._lost(leg, f"the peer connection {pc.connectionState} (ICE consent or DTLS)")

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
            if not audio:
                raise MediaError("the offer has no audio section")
            keep_consent(pc)  # a worker that falls behind must not fail its peers' consent (see ice_consent)
            inbound = OpusInbound(state.inbound, self.engine.rate, on_frame=self._arrival_probe(leg))
            if install(audio[0].receiver, inbound):
                state.receiver = inbound
            elif remote:  # aiortc is not the pinned one: read its decoded track instead
                state.pump = asyncio.get_running_loop().create_task(self._pump(state, remote[0]))
            pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
        except MediaError:
            await self.close_leg(leg)
            raise
        except Exception as exc:  # malformed SDP and friends: refuse the leg, keep the server
            await self.close_leg(leg)
            raise MediaError(f"cannot answer the SDP offer: {exc}") from exc
        log.info("webrtc.leg_opened", leg=leg, call_id=call_id)
        return pc.localDescription.sdp

    async def close_leg(self, leg: int) -> None:
        state = self.legs.pop(leg, None)
        if state is None:
            return
        self._legs_epoch += 1
        stats = state.inbound.stats  # counted before any await: the totals never dip while it closes
        for k in INBOUND_COUNTERS:
            self._closed_inbound[k] += getattr(stats, k)
        state.track.stop()
        if isinstance(state.direct, DirectRtp):
            state.direct.detach()
        if state.pump is not None:
            state.pump.cancel()
        with contextlib.suppress(Exception):
            await state.pc.close()
        log.info("webrtc.leg_closed", leg=leg, frames_in=state.frames_in, frames_out_dropped=state.track.dropped,
                 concealed=stats.concealed, shrunk=stats.shrunk, late=stats.late, inbound_depth=stats.depth,
                 jitter_ms=stats.jitter_ms)

    async def close(self) -> None:
        for leg in list(self.legs):
            await self.close_leg(leg)
        if self._encode_pool is not None:
            self._encode_pool.shutdown(wait=False, cancel_futures=True)
            self._encode_pool = None
        if self._table is not None:
            self._table.close()
        if self.trace is not None:
            self.trace.close()
            self.trace = None

    def inbound_totals(self) -> dict[str, int]:
        """Inbound buffer counters summed over every leg so far (open and closed), and the open legs'
        buffered frames (``depth``) beside what their measured jitter asks to keep (``target``)."""
        totals = dict(self._closed_inbound)
        depth = target = 0
        for state in self.legs.values():
            stats = state.inbound.stats
            for k in INBOUND_COUNTERS:
                totals[k] += getattr(stats, k)
            depth += stats.depth
            target += stats.target_frames
        return totals | {"legs": len(self.legs), "depth": depth, "target": target}

    # ------------------------------------------------------------------ onset probe (off unless traced)
    def _arrival_probe(self, leg: int) -> Callable[[int, np.ndarray, float], None] | None:
        trace = self.trace
        if trace is None:
            return None
        return lambda number, pcm, t: trace.see("arrival", leg, pcm, t) and None

    def _sent_probe(self, leg: int) -> None:
        if self.trace is not None:
            self.trace.note("sent", leg, time.monotonic())

    def _mixed(self, leg: int, pcm: np.ndarray) -> bool:
        return self.trace is not None and self.trace.see("mixed", leg, pcm, time.monotonic())

    # ------------------------------------------------------------------ audio
    def _feed_inputs(self, index: int) -> None:
        """Right before the tick: one frame per leg from its adaptive buffer into the mixer."""
        if not self.legs:
            return
        now = time.monotonic()
        if self.trace is None and jitter_fast.available():
            self._feed_fast(now)
            return
        legs, frames = [], []
        for leg, state in self.legs.items():
            pcm = state.inbound.pop(now)
            if pcm is not None and self.engine.has_leg(leg):
                legs.append(leg)
                frames.append(pcm)
                if self.trace is not None:
                    self.trace.see("played", leg, pcm, now)
        if legs:
            stacked = np.stack(frames)
            self.engine.push_many(legs, stacked)
            if self.meter is not None:
                self.meter.observe(legs, stacked)

    def _feed_fast(self, now: float) -> None:
        """:meth:`_feed_inputs` with every leg's buffer in C: one call pulls them all."""
        feed = self._feed
        key = (self.engine.routing_epoch, self._legs_epoch)
        if feed is None or feed.key != key:
            feed = self._feed = _FeedPlan(key, self.legs, self.engine.has_leg, self.engine.n_samples)
        if not len(feed.legs):
            return
        got = jitter_fast.pop_many(feed.buffers, now, feed.frames, feed.got)
        if got == len(feed.legs) and feed.all_mixed:
            legs, frames = feed.legs, feed.frames
        else:
            take = feed.got.view(bool) & feed.mixed
            if not take.any():
                return
            legs, frames = feed.legs[take], feed.frames[take]
        self.engine.push_many(legs, frames)
        if self.meter is not None:
            self.meter.observe(legs, frames)

    def _on_tick(self, stats: TickStats) -> None:
        if stats.index % 25 == 0:
            self._watchdog()
        if not self.legs:
            return
        if self.shared_encode and not self._encode_failed:
            if self._table is not None and self.trace is None:
                self._send_fast(stats.index)
            else:
                self._encode_tick()
            return
        for leg, state in list(self.legs.items()):
            try:
                pcm = self.engine.output(leg).copy()
            except KeyError:
                continue
            state.track.feed(pcm, self._mixed(leg, pcm))

    def _ready(self) -> set[int]:
        """Legs that can take this tick's payload: their direct RTP path is up (attached here as soon as DTLS
        is), or aiortc's sender does the sending (its internals are not the pinned ones, or the leg's receiver
        shim is missing). A leg still connecting gets nothing (nothing could be sent yet)."""
        ready = set()
        for leg, state in self.legs.items():
            if state.direct is None:
                if state.pump is not None:  # no receiver shim: aiortc's path both ways
                    state.direct = UNAVAILABLE
                elif state.receiver is None:  # still negotiating
                    continue
                else:
                    state.direct = DirectRtp.attach(state.pc, state.receiver, self.engine.n_samples,
                                                    self.engine.rate)
                    if state.direct is None:
                        continue
            ready.add(leg)
        return ready

    def _encode_tick(self) -> None:
        """Encode this tick's mixes (inline or on the encode thread): one job per group of legs hearing the same
        mix, for the legs that can send."""
        jobs: list[tuple[frozenset[int], np.ndarray]] = []
        marks: set[int] = set()
        for mine in self._groups(self._ready()):
            jobs.append((mine, self.engine.output(next(iter(mine))).copy()))
            if self.trace is not None:
                marks.update(leg for leg in mine if self._mixed(leg, jobs[-1][1]))
        if self.encode_inline:
            done: asyncio.Future[list[tuple[frozenset[int], list[bytes]]]] = asyncio.get_running_loop().create_future()
            try:
                done.set_result(self._encode_jobs(jobs))
            except Exception as exc:  # noqa: BLE001 - handled by _deliver like a failed thread job
                done.set_exception(exc)
            self._deliver(marks, done)
            return
        if self._encode_pool is None:  # one thread: encodes stay in tick order
            self._encode_pool = ThreadPoolExecutor(1, thread_name_prefix="bargein-opus")
        fut = asyncio.get_running_loop().run_in_executor(self._encode_pool, self._encode_jobs, jobs)
        fut.add_done_callback(functools.partial(self._deliver, marks))

    def _send_fast(self, index: int) -> None:
        """:meth:`_encode_tick` and :meth:`_deliver` on the C path: one call encodes every group and sends every leg."""
        assert self._table is not None
        plan = self._plan
        if plan is None or plan.pending or plan.key != (self.engine.routing_epoch, self._legs_epoch):
            plan = self._plan = self._make_plan()
        if not plan.groups:
            return
        sent = self._table.send_rows(plan.encoders, self.engine.output_addresses(plan.mixes), self.engine.n_samples)
        if sent < 0:  # never leave legs mute: fall back to one encode per leg
            log.error("webrtc.shared_encode_failed", error=f"opus_encode failed for legs {sorted(plan.groups[-1 - sent])}")
            self._encode_failed = True
            return
        self.encodes += len(plan.groups)
        self.deliveries += plan.fast_legs
        for leg, g in plan.slow:  # legs aiortc sends, or whose direct path stayed in Python
            state = self.legs.get(leg)
            if state is None:
                continue
            if isinstance(state.direct, DirectRtp):
                state.direct.send(self._table.payload(g))
            else:
                state.track.feed(self._table.payload(g))
            self.deliveries += 1
        if index % 8 == 0:  # what the legs' RTCP tasks put in sender reports (every 0.5-1.5 s): fresh to 160 ms
            for direct in self._table.owners.values():
                direct.report()

    def _make_plan(self) -> _SendPlan:
        assert self._table is not None
        key = (self.engine.routing_epoch, self._legs_epoch)
        ready = self._ready()
        pending = len(ready) < len(self.legs)
        for leg in ready:
            state = self.legs[leg]
            direct = state.direct
            if isinstance(direct, DirectRtp) and not direct.fast and not state.fast_refused:
                state.fast_refused = not direct.go_fast(self._table)
        groups = self._groups(ready)
        encoders = np.array([enc.opus._enc for enc in self._group_encoders(groups)], np.int64)  # type: ignore[union-attr]
        rows, row_groups, slow = [], [], []
        for g, legs in enumerate(groups):
            for leg in legs:
                direct = self.legs[leg].direct
                if isinstance(direct, DirectRtp) and direct.fast:
                    rows.append(direct.row)
                    row_groups.append(g)
                else:
                    slow.append((leg, g))
        self._table.set_groups(rows, row_groups)
        mixes = self.engine.output_gather([next(iter(legs)) for legs in groups])
        return _SendPlan(key, pending, groups, encoders, mixes, len(rows), slow)

    def _groups(self, ready: set[int]) -> list[frozenset[int]]:
        """The ``ready`` legs, grouped by the mix they hear (one encode per group)."""
        calls = set()
        for leg in ready:
            with contextlib.suppress(KeyError):
                calls.add(self.engine.call_of(leg))
        return [mine for call in calls for group in self.engine.shared_mix_groups(call)
                if (mine := frozenset(leg for leg in group if leg in ready))]

    def _group_encoders(self, groups: list[frozenset[int]]) -> list[_GroupEncoder]:
        """Each group's encoder (a new group gets a fresh one; a group that changed or left ends its stream)."""
        for legs in groups:
            if legs not in self._encoders:
                self._encoders[legs] = _GroupEncoder(self.engine.rate)
        for gone in self._encoders.keys() - set(groups):
            del self._encoders[gone]
        return [self._encoders[legs] for legs in groups]

    def _encode_jobs(self, jobs: list[tuple[frozenset[int], np.ndarray]]) -> list[tuple[frozenset[int], list[bytes]]]:
        encoders = self._group_encoders([legs for legs, _ in jobs])
        return [(legs, enc.encode(pcm)) for (legs, pcm), enc in zip(jobs, encoders, strict=True)]

    def _deliver(self, marks: set[int], fut: asyncio.Future[list[tuple[frozenset[int], list[bytes]]]]) -> None:
        if fut.cancelled():
            return
        if fut.exception() is not None:  # never leave legs mute: fall back to one encode per leg
            log.error("webrtc.shared_encode_failed", error=repr(fut.exception()))
            self._encode_failed = True
            return
        self.encodes += len(fut.result())
        for legs, payloads in fut.result():
            for leg in legs:
                state = self.legs.get(leg)
                if state is None:
                    continue
                direct = state.direct
                for payload in payloads:
                    if direct is UNAVAILABLE or direct is None:
                        state.track.feed(payload, leg in marks)
                    else:  # straight to the socket, this leg after the other in one pass
                        direct.send(payload)
                        if leg in marks and state.track.on_sent is not None:
                            state.track.on_sent()
                    self.deliveries += 1

    def _watchdog(self) -> None:
        """A peer that vanished without closing (browser killed, network gone) stops sending: free its leg. And the
        C path's receiver statistics go to aiortc's receiver reports, and its legs are checked."""
        now = time.monotonic()
        for leg, state in list(self.legs.items()):
            if isinstance(state.direct, DirectRtp):
                state.direct.sync_stats()
                if state.direct.revalidate():
                    self._legs_epoch += 1
            if state.last_in is not None:
                silent = now - state.last_in > self.silent_peer_s
            else:
                silent = now - state.opened > self.connect_grace_s
            if silent:
                why = (f"no audio from the peer for {now - state.last_in:.1f} s" if state.last_in is not None
                       else f"no audio from the peer {now - state.opened:.1f} s after the answer")
                task = asyncio.get_running_loop().create_task(self._lost(leg, why))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _lost(self, leg: int, why: str) -> None:
        if leg in self.legs:
            state = self.legs[leg]
            log.warning("webrtc.leg_lost", leg=leg, why=why, frames_in=state.frames_in,
                        open_s=round(time.monotonic() - state.opened, 1))
            self.why_lost[leg] = why
            if len(self.why_lost) > 256:  # nobody asked for the oldest
                del self.why_lost[next(iter(self.why_lost))]
            self.lost += 1
            await self.close_leg(leg)
            self.on_leg_lost(leg)

    async def _pump(self, state: _Leg, remote: MediaStreamTrack) -> None:
        """Fallback when the receiver shim is unavailable: aiortc's decoded frames, numbered by their pts."""
        cutter = FrameCutter(self.engine.rate, self.engine.n_samples)
        try:
            while True:
                frame = await remote.recv()
                now = state._pump_last_in = time.monotonic()
                pos = int(frame.pts * frame.time_base * RTP_RATE) if frame.pts is not None else 0
                for number, pcm in cutter.cut(pos, [frame]):
                    state.inbound.put(number, pcm, now)
        except (MediaStreamError, asyncio.CancelledError):
            return
