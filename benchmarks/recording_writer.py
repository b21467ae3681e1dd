"""CPU the recording writer thread spends per recorded call: 20 ms Opus packets against 100 ms ones, in one run.

    python -m benchmarks.recording_writer [--calls 1,8,32] [--seconds 20] [--packet-frames 1,5] [--json PATH]

Each recorded call is a stereo tone pair (as the mixer's tap hands it over). The batches are built first, as a
media worker's :class:`~bargein.signaling.recorder.CallRecorder` hands them over (5 ticks at a time, every call's
frames in each); then a :class:`~bargein.signaling.recorder.RecordingWriter` encodes and writes them into one
OGG/Opus file per call, on its own thread, while this thread waits for it. The figure is that process CPU
(user + system) over the audio it wrote: ``cpu_pct_per_call`` is % of one core per recorded call in real time.
Packet sizes alternate, best of ``--rounds``, so both see the same machine.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import structlog
from bargein.signaling.recorder import BATCH_TICKS, OggOpusFile, RecordingWriter

from ._report import print_table, write_json

RATE, SAMPLES = 48000, 960


def batches(calls: int, seconds: float) -> list[tuple[np.ndarray, np.ndarray]]:
    ticks = int(seconds * 50)
    t = np.arange(ticks * SAMPLES) / RATE
    left = (6000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).reshape(ticks, SAMPLES)
    right = (6000 * np.sin(2 * np.pi * 620 * t)).astype(np.int16).reshape(ticks, SAMPLES)
    out = []
    for first in range(0, ticks, BATCH_TICKS):
        n = min(BATCH_TICKS, ticks - first)
        frames = np.stack([left[first:first + n], right[first:first + n]], axis=1)  # (n, 2, samples)
        out.append((np.tile(np.arange(calls), n), np.repeat(frames, calls, axis=0)))  # tick-major, like the tap
    return out


def cpu_s() -> float:
    return time.process_time()  # every thread of this process: the writer's encodes, this thread only waits


def run(calls: int, seconds: float, packet_frames: int, work: list[tuple[np.ndarray, np.ndarray]]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        writer = RecordingWriter(RATE, lambda rec_id, why: None, max_batches=len(work) + 1,
                                 sink_factory=lambda path, rate: OggOpusFile(path, rate, packet_frames))
        writer.start()
        for c in range(calls):
            writer.open(c, Path(tmp) / f"{c}.ogg")
        writer.sync()
        c0 = cpu_s()
        for ids, frames in work:
            writer.feed(ids, frames)
        writer.sync(600)
        used = cpu_s() - c0
        writer.stop()
        assert writer.batches_dropped == 0 and writer.frames_written == calls * seconds * 50
    return used


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", default="1,8,32", help="recorded calls, comma separated")
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds of audio per call")
    ap.add_argument("--packet-frames", default="1,5", help="20 ms frames per Opus packet, comma separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = ap.parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sizes = [int(p) for p in args.packet_frames.split(",")]
    rows = []
    for calls in map(int, args.calls.split(",")):
        work = batches(calls, args.seconds)
        best = {p: float("inf") for p in sizes}
        for _ in range(args.rounds):
            for p in sizes:
                best[p] = min(best[p], run(calls, args.seconds, p, work))
        for p in sizes:
            audio_s = calls * args.seconds
            rows.append({"calls": calls, "packet_ms": 20 * p, "audio_s": audio_s, "cpu_s": round(best[p], 3),
                         "us_per_frame": round(best[p] / (audio_s * 50) * 1e6, 1),
                         "cpu_pct_per_call": round(100 * best[p] / args.seconds / calls, 3)})
    print_table(f"Recording writer, CPU (best of {args.rounds}; {time.strftime('%H:%M:%S')})", rows,
                ["calls", "packet_ms", "audio_s", "cpu_s", "us_per_frame", "cpu_pct_per_call"])
    write_json(args.json, rows)


if __name__ == "__main__":
    main()
