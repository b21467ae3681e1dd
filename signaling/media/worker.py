"""A media worker process: its own event loop (uvloop when installed), mixer shard, clock and WebRTC legs.

Started by :class:`~bargein.signaling.media.pool.WorkerPool` as
``python -m bargein.signaling.media.worker --fd N --config JSON``; ``N`` is its end of a socket pair
that carries :mod:`~bargein.signaling.media.protocol` frames. The worker never decides who is in a
call: it applies the signaling process's leg messages to its :class:`MixerEngine` and answers SDP
offers with :class:`WebRTCGateway`. When the socket closes (the signaling process went away) it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import structlog
from bargein.mixer import LimitError, MixerEngine, RealtimeClock
from pydantic import ValidationError

from ..gateway import MediaError
from ..levels import LevelMeter
from ..recorder import CallRecorder
from ..webrtc import WebRTCGateway
from . import protocol as p

log = structlog.get_logger("bargein.media.worker")


class MediaWorker:
    """The worker's state; ``send`` writes one message to the signaling process."""

    def __init__(self, config: p.WorkerConfig, writer: asyncio.StreamWriter) -> None:
        self.config, self.id = config, config.worker
        self.writer = writer
        self.engine = MixerEngine(rate=config.mixer_rate, limits=config.limits)
        self.clock = RealtimeClock(self.engine.tick)  # ticks on its own loop: a worker holds few calls
        self.gateway = WebRTCGateway(silent_peer_s=config.silent_peer_s, connect_grace_s=config.connect_grace_s,
                                     encode_inline=config.encode_inline)
        self.gateway.attach(self.engine, self.clock, self._gateway_lost)
        self.levels = self.gateway.meter = LevelMeter(self.engine.legs_of)  # calls with a supervisor
        self.clock.add_listener(self._levels_tick)
        self.legs: dict[str, int] = {}  # core leg id -> mixer leg id
        self.keys: dict[int, tuple[str, str]] = {}  # mixer leg id -> (call id, core leg id)
        self._tasks: set[asyncio.Task[None]] = set()
        self.recorder = CallRecorder(self.engine, self._recording_failed)  # the calls this worker mixes
        self.clock.add_listener(self.recorder.on_tick)
        self._loop: asyncio.AbstractEventLoop | None = None

    def _recording_failed(self, rec_id: int, reason: str) -> None:
        """From the writer thread: tell the signaling process (the call goes on)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.send, p.RecordingFailed(worker=self.id, rec_id=rec_id, reason=reason))

    def send(self, msg: p._Message) -> None:
        if not self.writer.is_closing():
            self.writer.write(p.encode(msg))

    # ------------------------------------------------------------------ messages
    async def handle(self, msg: p.ToWorker) -> None:
        if isinstance(msg, p.AddLeg):
            self._add(msg)
        elif isinstance(msg, p.UpdateLeg):
            leg = self.legs.get(msg.leg)
            if leg is not None:
                self.engine.set_routing(leg, msg.routing.to_mixer())
        elif isinstance(msg, p.RemoveLeg):
            leg = self.legs.pop(msg.leg, None)
            if leg is not None:
                self.keys.pop(leg, None)
                await self.gateway.close_leg(leg)
                self.engine.remove_leg(leg)
        elif isinstance(msg, p.MeterCall):
            self.levels.meter(msg.call_id, msg.on)
        elif isinstance(msg, p.Offer):  # negotiation takes a while: later messages must not wait for it
            self._spawn(self._answer(msg))
        elif isinstance(msg, p.StatsRequest):
            self.send(self.stats(msg.request, msg.per_leg))
        elif isinstance(msg, p.StartRecording):
            why_not = self.recorder.record(msg.call_id, msg.rec_id, Path(msg.path), msg.channels)
            if why_not is not None:
                self.send(p.RecordingFailed(worker=self.id, rec_id=msg.rec_id, reason=why_not))
        elif isinstance(msg, p.StopRecording):
            self.recorder.stop(msg.rec_id)

    def _add(self, msg: p.AddLeg) -> None:
        try:
            leg = self.engine.add_leg(msg.call_id, msg.routing.to_mixer())
        except LimitError as exc:  # the core checks first; a second line of defence
            log.error("media.mixer_refused_leg", worker=self.id, call_id=msg.call_id, leg=msg.leg, why=str(exc))
            self.send(p.LegLost(worker=self.id, call_id=msg.call_id, leg=msg.leg, reason=f"mixer refused: {exc}"))
            return
        self.legs[msg.leg], self.keys[leg] = leg, (msg.call_id, msg.leg)

    async def _answer(self, msg: p.Offer) -> None:
        leg = self.legs.get(msg.leg)
        if leg is None:
            self.send(p.Refused(worker=self.id, request=msg.request, leg=msg.leg, reason="the leg is not in a call"))
            return
        try:
            sdp = await self.gateway.open_leg(leg, msg.call_id, msg.sdp)
        except MediaError as exc:
            self.send(p.Refused(worker=self.id, request=msg.request, leg=msg.leg, reason=str(exc)))
            return
        if self.legs.get(msg.leg) != leg:  # the leg was removed while its offer was being answered
            await self.gateway.close_leg(leg)
            self.send(p.Refused(worker=self.id, request=msg.request, leg=msg.leg, reason="the leg has ended"))
            return
        self.send(p.Answer(worker=self.id, request=msg.request, leg=msg.leg, sdp=sdp))

    def _levels_tick(self, stats: object) -> None:
        got = self.levels.tick()
        if got:
            calls = {str(call): {self.keys[leg][1]: min(1.0, v) for leg, v in legs.items() if leg in self.keys}
                     for call, legs in got.items()}
            self.send(p.LegLevels(worker=self.id, calls=calls))

    def _gateway_lost(self, leg: int) -> None:
        key = self.keys.get(leg)
        if key is not None:
            why = self.gateway.why_lost.pop(leg, None)
            self.send(p.LegLost(worker=self.id, call_id=key[0], leg=key[1],
                                reason="media connection lost" + (f": {why}" if why else "")))

    def _spawn(self, coro: object) -> None:
        task = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ stats
    def stats(self, request: int | None = None, per_leg: bool = False) -> p.Stats:
        s, c, t = self.clock.stats, self.engine.counters, os.times()
        p50, p99 = s.percentiles("compute_ms", (50, 99))
        frames_in = None
        if per_leg:
            frames_in = {key: st.frames_in for leg, st in self.gateway.legs.items()
                         if (key := self.keys.get(leg, (None, None))[1]) is not None}
        return p.Stats(worker=self.id, request=request, pid=os.getpid(), calls=self.engine.call_count,
                       legs=self.engine.leg_count, media_legs=len(self.gateway.legs), ticks=s.ticks,
                       deadline_misses=s.deadline_misses, skipped_ticks=self.clock.skipped,
                       tick_ms_p50=round(p50, 3), tick_ms_p99=round(p99, 3), tick_ms_max=round(s.max_compute_ms, 3),
                       frames_missing=c.frames_missing, frames_dropped=c.frames_dropped,
                       frames_pushed=c.frames_pushed, legs_lost=self.gateway.lost, cpu_s=t.user + t.system,
                       frames_in=frames_in, inbound=self.gateway.inbound_totals())

    async def _push_stats(self) -> None:
        while True:
            await asyncio.sleep(self.config.stats_every_s)
            self.send(self.stats())

    # ------------------------------------------------------------------ run
    async def serve(self, reader: asyncio.StreamReader, loop_name: str) -> None:
        self._loop = asyncio.get_running_loop()
        self.recorder.start()
        self.clock.start()
        self._spawn(self._push_stats())
        self.send(p.Hello(worker=self.id, pid=os.getpid(), loop=loop_name))
        log.info("media.worker_started", worker=self.id, pid=os.getpid(), loop=loop_name)
        try:
            while (frame := await p.read_frame(reader)) is not None:
                try:
                    msg = p.TO_WORKER.validate_json(frame)
                except ValidationError as exc:  # a bad message costs that message, not the worker
                    log.error("media.bad_message", worker=self.id, error=str(exc))
                    continue
                if isinstance(msg, p.Shutdown):
                    break
                try:
                    await self.handle(msg)
                except Exception:  # a bug must cost one message, not every call on this worker
                    log.exception("media.internal_error", worker=self.id, message=msg.type)
        except (p.FrameError, ConnectionError) as exc:
            log.error("media.transport_broken", worker=self.id, error=str(exc))
        finally:
            for task in list(self._tasks):
                task.cancel()
            await self.gateway.close()
            await self.clock.stop()
            await asyncio.to_thread(self.recorder.close)  # finish every recording file
            with contextlib.suppress(Exception):
                self.writer.close()
            log.info("media.worker_stopped", worker=self.id)


async def _main(fd: int, config: p.WorkerConfig, loop_name: str) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock, limit=p.MAX_FRAME + 16)
    await MediaWorker(config, writer).serve(reader, loop_name)


def _configure_logging(level: str) -> None:
    """Logs go to stderr (inherited from the signaling process), as JSON lines."""
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="bargein media worker (started by the server)")
    ap.add_argument("--fd", type=int, required=True, help="inherited socket to the signaling process")
    ap.add_argument("--config", required=True, help="WorkerConfig as JSON")
    ap.add_argument("--log-level", default=os.environ.get("BARGEIN_LOG_LEVEL", "INFO"))
    args = ap.parse_args(argv)
    # Ctrl-C reaches the whole process group, and so may SIGTERM (systemd's default, a cluster node's drain):
    # the signaling process stops its workers itself (Shutdown, or the socket closing), so a worker must not
    # die first and look like a crash (a draining node keeps its calls' media until they end)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _configure_logging(args.log_level)
    config = p.WorkerConfig.model_validate_json(args.config)
    started = time.monotonic()
    try:
        import uvloop
    except ImportError:
        uvloop = None  # type: ignore[assignment]
    if uvloop is not None and config.loop == "uvloop":
        uvloop.run(_main(args.fd, config, "uvloop"))
    else:
        asyncio.run(_main(args.fd, config, "asyncio"))
    log.debug("media.worker_exit", worker=config.worker, ran_s=round(time.monotonic() - started, 1))


if __name__ == "__main__":
    main()
