"""Call recordings written off the mixer's path: stereo OGG/Opus files (PyAV) on one writer thread.

:class:`CallRecorder` records the calls of one mixer (the server's, or a media worker's shard): it
turns the mixer's tap on and off and feeds the writer after every tick.

The mixer's tick produces one stereo frame per recorded call (:meth:`MixerEngine.recording_output`).
:meth:`RecordingWriter.feed` hands the whole tick's batch to the writer thread through a bounded
queue and never blocks: when the queue is full (the disk is too slow) every recording in that batch
stops with an error. A file that cannot be written (disk full, any error of the sink) stops only
that recording. Either way ``on_error(rec_id, reason)`` is called (from the writer thread, or from
the caller of ``feed``) and the call itself is never touched.

Control messages (open, close) travel through the same queue, so they stay in order with the
frames, but they are never dropped: only frame batches count against the bound.
"""

from __future__ import annotations

import fractions
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import structlog
from bargein.mixer import MixerEngine, TickStats, UnknownCallError

from . import libopus
from .opus_voice import (
    LIVE_APPLICATION,
    LIVE_BANDWIDTH,
    RECORDING_BIT_RATE,
    RECORDING_COMPLEXITY,
    voice_options,
)

log = structlog.get_logger("bargein.recording")

ErrorFn = Callable[[int, str], None]


class StereoSink(Protocol):
    """Where one recording's frames go (a file)."""

    def write(self, frames: np.ndarray) -> None:
        """Consecutive stereo frames, ``(k, 2, samples)`` int16: left then right."""

    def close(self) -> None: ...


# 20 ms frames per Opus packet in a recording file. Each packet costs a libopus call, a PyAV packet and a mux
# whatever its length; a file has no latency to keep, so 100 ms packets cost the writer a fifth of that
PACKET_FRAMES = 5


class OggOpusFile:
    """A stereo OGG/Opus file at the mixer rate (Ogg Opus decodes at 48 kHz whatever it was encoded at).

    PyAV writes the container. The frames are encoded by libopus directly (:mod:`.libopus`, configured like
    the stream's own encoder, whose opening writes the Opus header) and muxed as packets: PyAV's ``encode``
    pushes every frame through an FFmpeg filter graph first, which cost more than the encode itself. Without
    that library PyAV's encoder does it all."""

    def __init__(self, path: Path, rate: int, packet_frames: int = PACKET_FRAMES) -> None:
        if not 1 <= packet_frames <= 6:
            raise ValueError("an Opus packet holds 1 to 6 frames of 20 ms")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(path), "w", format="ogg")
        self.stream = self.container.add_stream("libopus", rate=rate, layout="stereo",
                                              options=voice_options(RECORDING_COMPLEXITY))
        self.stream.codec_context.bit_rate = RECORDING_BIT_RATE
        self.rate = rate
        self.pts = 0
        self.time_base = fractions.Fraction(1, rate)
        self.opus: libopus.Encoder | None = None
        if libopus.available():
            self.stream.codec_context.open()  # its Opus header (channels, rate, pre-skip) for the container
            self.opus = libopus.Encoder(rate, 2, bit_rate=RECORDING_BIT_RATE, complexity=RECORDING_COMPLEXITY,
                                        max_bandwidth=LIVE_BANDWIDTH, application=LIVE_APPLICATION)
        self.packet_frames = packet_frames
        self._held: np.ndarray | None = None  # frames waiting for a whole packet
        self._n_held = 0

    def write(self, frames: np.ndarray) -> None:
        if frames.ndim != 3 or frames.shape[1] != 2 or frames.dtype != np.int16:
            raise ValueError(f"frames must be int16 of shape (k, 2, samples), got {frames.dtype} {frames.shape}")
        if self.opus is None:
            for frame in frames:
                self._encode_pyav(frame)
            return
        at, k, whole = 0, len(frames), self.packet_frames
        while at < k:
            take = min(whole - self._n_held, k - at)
            if take == whole:  # a whole packet's frames in a row: no copy
                self._encode(frames[at:at + take])
            else:
                if self._held is None:
                    self._held = np.empty((whole, *frames.shape[1:]), np.int16)
                self._held[self._n_held:self._n_held + take] = frames[at:at + take]
                self._n_held += take
                if self._n_held == whole:
                    self._encode(self._held)
                    self._n_held = 0
            at += take

    def _encode(self, frames: np.ndarray) -> None:
        """One Opus packet of ``len(frames)`` frames (20-120 ms: any whole number of 20 ms frames up to 6)."""
        assert self.opus is not None
        samples = frames.shape[0] * frames.shape[2]
        packed = np.ascontiguousarray(frames.transpose(0, 2, 1)).reshape(1, 2 * samples)  # s16 packed: L R L R ...
        packet = av.Packet(self.opus.encode(packed))
        packet.stream, packet.time_base = self.stream, self.time_base
        packet.pts = packet.dts = self.pts
        packet.duration = samples
        self.pts += samples
        self.container.mux(packet)

    def _encode_pyav(self, frame: np.ndarray) -> None:
        ns = frame.shape[1]
        af = av.AudioFrame.from_ndarray(np.ascontiguousarray(frame.T).reshape(1, 2 * ns), format="s16", layout="stereo")
        af.sample_rate, af.pts = self.rate, self.pts
        self.pts += ns
        for packet in self.stream.encode(af):
            self.container.mux(packet)

    def close(self) -> None:
        if self.pts == 0 and not self._n_held:  # a call that ended before its first tick: PyAV writes no file
            self.write(np.zeros((1, 2, self.rate // 50), np.int16))  # without a frame, and the record names it
        if self._n_held:  # the last frames: a shorter packet (still a whole number of 20 ms frames)
            assert self._held is not None
            self._encode(self._held[: self._n_held])
            self._n_held = 0
        try:
            if self.opus is None:
                for packet in self.stream.encode(None):
                    self.container.mux(packet)
        finally:
            self.container.close()


SinkFactory = Callable[[Path, int], StereoSink]

_OPEN, _CLOSE, _FRAMES, _SYNC, _STOP = "open", "close", "frames", "sync", "stop"


class RecordingWriter:
    """One thread that encodes every recorded call's frames into its own file."""

    def __init__(self, rate: int, on_error: ErrorFn, *, max_batches: int = 250,
                 sink_factory: SinkFactory = OggOpusFile) -> None:
        self.rate = rate
        self.on_error = on_error
        self.sink_factory = sink_factory
        self._queue: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._room = threading.BoundedSemaphore(max_batches)  # frame batches waiting, at most max_batches
        self._open: set[int] = set()  # ids open from the feeder's point of view
        self._thread: threading.Thread | None = None
        self.batches_dropped = 0
        self.frames_written = 0

    # ------------------------------------------------------------------ caller side (event loop)
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="bargein-recording", daemon=True)
            self._thread.start()

    def open(self, rec_id: int, path: Path) -> None:
        self._open.add(rec_id)
        self._queue.put((_OPEN, rec_id, path))

    def close(self, rec_id: int) -> None:
        if rec_id in self._open:
            self._open.discard(rec_id)
            self._queue.put((_CLOSE, rec_id))

    def feed(self, ids: np.ndarray, frames: np.ndarray) -> None:
        """Hand one tick's recording frames to the writer; never blocks."""
        if not ids.size:
            return
        if self._room.acquire(blocking=False):
            self._queue.put((_FRAMES, ids, frames))
            return
        self.batches_dropped += 1
        for rec_id in ids.tolist():
            if rec_id in self._open:
                self._open.discard(rec_id)
                self._queue.put((_CLOSE, rec_id))
                self.on_error(rec_id, "the recording writer fell behind (disk too slow): recording stopped")

    def sync(self, timeout_s: float = 30.0) -> bool:
        """Block until everything queued so far is written (files closed by then are complete)."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put((_SYNC, done))
        return done.wait(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close every file (what is queued is written first) and end the thread."""
        if self._thread is not None:
            self._queue.put((_STOP,))
            self._thread.join(timeout_s)
            self._thread = None

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        sinks: dict[int, StereoSink] = {}
        while True:
            item = self._queue.get()
            kind = item[0]
            if kind == _FRAMES:
                self._room.release()
                ids, frames = item[1], item[2]
                rows: dict[int, list[int]] = {}  # each recording's frames in the batch, in tick order
                for i, rec_id in enumerate(ids.tolist()):
                    rows.setdefault(rec_id, []).append(i)
                for rec_id, mine in rows.items():
                    sink = sinks.get(rec_id)
                    if sink is None:
                        continue
                    try:
                        sink.write(frames[mine])
                        self.frames_written += len(mine)
                    except Exception as exc:  # disk full, I/O error, encoder error: this recording stops
                        self._fail(sinks, rec_id, f"writing the recording failed: {exc}")
            elif kind == _OPEN:
                rec_id, path = item[1], item[2]
                try:
                    sinks[rec_id] = self.sink_factory(path, self.rate)
                    log.info("recording.started", rec_id=rec_id, path=str(path))
                except Exception as exc:
                    self._report(rec_id, f"the recording file could not be created: {exc}")
            elif kind == _CLOSE:
                sink = sinks.pop(item[1], None)
                if sink is not None:
                    try:
                        sink.close()
                        log.info("recording.finished", rec_id=item[1])
                    except Exception as exc:
                        self._report(item[1], f"finishing the recording failed: {exc}")
            elif kind == _SYNC:
                item[1].set()
            else:  # stop
                for rec_id in list(sinks):
                    with_error = sinks.pop(rec_id)
                    try:
                        with_error.close()
                    except Exception as exc:
                        self._report(rec_id, f"finishing the recording failed: {exc}")
                return

    def _fail(self, sinks: dict[int, StereoSink], rec_id: int, reason: str) -> None:
        sink = sinks.pop(rec_id)
        try:
            sink.close()
        except Exception:  # the file is already broken; the first error is the one reported
            pass
        self._report(rec_id, reason)

    def _report(self, rec_id: int, reason: str) -> None:
        log.warning("recording.failed", rec_id=rec_id, why=reason)
        try:
            self.on_error(rec_id, reason)
        except Exception:
            log.exception("recording.error_callback_failed", rec_id=rec_id)


BATCH_TICKS = 5  # ticks handed to the writer thread at once: waking it every 20 ms cost more than its encodes


class CallRecorder:
    """Records calls of one mixer: :meth:`MixerEngine.set_recording` (the tap in the tick) and a
    :class:`RecordingWriter` fed from a clock listener (one batch per :data:`BATCH_TICKS` ticks, no per-call
    work); a recording that stops has its last frames handed over first."""

    def __init__(self, engine: MixerEngine, on_error: ErrorFn | None = None,
                 writer: RecordingWriter | None = None) -> None:
        self.engine = engine
        self.writer = writer or RecordingWriter(engine.rate, self._error)
        self.writer.on_error = self._error
        self.on_error: ErrorFn = on_error or (lambda rec_id, reason: None)
        self.calls: dict[int, str] = {}  # recording id -> call
        self._batch: list[tuple[np.ndarray, np.ndarray]] = []  # ticks not yet handed to the writer

    def _error(self, rec_id: int, reason: str) -> None:
        self.on_error(rec_id, reason)

    def start(self) -> None:
        self.writer.start()

    def on_tick(self, stats: TickStats) -> None:
        """Clock listener: hand the tick's recording frames to the writer thread."""
        if self.calls:
            ids, frames = self.engine.recording_output()  # fresh arrays every tick: kept as they are
            if ids.size:
                self._batch.append((ids, frames))
                if len(self._batch) >= BATCH_TICKS:
                    self.flush()

    def flush(self) -> None:
        """Hand the ticks kept so far to the writer (in tick order, so each file's frames stay in order)."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        if len(batch) == 1:
            self.writer.feed(*batch[0])
        else:
            self.writer.feed(np.concatenate([ids for ids, _ in batch]), np.concatenate([f for _, f in batch]))

    def record(self, call_id: str, rec_id: int, path: Path, channels: tuple[bool, bool]) -> str | None:
        """Start recording ``call_id`` into ``path``; returns why not, or None."""
        try:
            self.engine.set_recording(call_id, rec_id, channels)
        except UnknownCallError:
            return "the call had no audio in the mixer when it was answered"
        self.writer.open(rec_id, path)
        self.calls[rec_id] = call_id
        return None

    def stop(self, rec_id: int) -> None:
        call_id = self.calls.pop(rec_id, None)
        if call_id is None:
            return
        self.flush()  # its last frames go before its close
        try:
            if self.engine.recording_of(call_id) == rec_id:
                self.engine.set_recording(call_id, None)
        except UnknownCallError:  # the call already left the mixer
            pass
        self.writer.close(rec_id)

    def close(self) -> None:
        """Stop every recording and finish the files (blocks: call it on a worker thread)."""
        for rec_id in list(self.calls):
            self.stop(rec_id)
        self.writer.stop()
