"""CPU per leg and tick of a server leg's inbound path: the adaptive buffer in Python against the one in C.

    python -m benchmarks.inbound_path [--legs 16] [--ticks 1500] [--json PATH]

Per tick, every leg receives one SRTP Opus packet through the C receiver (:class:`~.rtp_fast.Receiver`: unprotect,
parse, statistics, decode) and the tick pulls one frame per leg, as a media worker does:

- ``python``: the receiver hands the PCM to ``OpusInbound.add_pcm`` (timestamp unwrap, frame cutting,
  ``AdaptiveJitterBuffer.put``), and the tick calls each leg's ``pop``;
- ``c``: the receiver puts the frame in the leg's ``FastJitterBuffer`` itself (``RX_QUEUED``), and the tick
  pulls every leg in one ``pop_many``.

Hot (packets pre-built and fed back to back, so frames arrive faster than real time; both buffers decide the
same), CPU time of this thread (``time.thread_time``), best of ``--rounds``, the two alternating. The codec and
SRTP are in both rows; the difference is the Python the C buffer takes out.
"""

from __future__ import annotations

import argparse
import struct
import time
from pathlib import Path

import numpy as np
import pylibsrtp
from aiortc.rtcrtpreceiver import StreamStatistics
from bargein.mixer.tones import tone
from bargein.signaling import jitter_fast, libopus, rtp_fast
from bargein.signaling.jitter import AdaptiveJitterBuffer
from bargein.signaling.opus_inbound import OpusInbound

from ._report import print_table, write_json

RATE, N, KEY = 48000, 960, bytes(range(30))


def _session(direction: int) -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=direction))


def run(in_c: bool, legs: int, ticks: int, payloads: list[bytes]) -> float:
    """µs of CPU per leg and tick."""
    tx = _session(pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    sessions, inbounds, receivers = [], [], []
    for _ in range(legs):
        sessions.append(_session(pylibsrtp.Policy.SSRC_ANY_INBOUND))  # kept: the receiver holds its address
        buf = jitter_fast.FastJitterBuffer(N) if in_c else AdaptiveJitterBuffer(N)
        inbound = OpusInbound(buf, RATE)
        inbounds.append(inbound)
        receivers.append(rtp_fast.Receiver(rtp_fast.srtp_address(sessions[-1]), inbound.decoder, 111, RATE,
                                           inbound.jitter_buffer, RATE))
    packets = [[tx.protect(struct.pack("!BBHLL", 0x80, 111, k & 0xFFFF, k * N & 0xFFFFFFFF, 1000 + leg)
                           + payloads[k % len(payloads)]) for k in range(ticks)] for leg in range(legs)]
    for leg, rx in enumerate(receivers):
        assert rx.receive(packets[leg][0]) == rtp_fast.RX_NEW_SSRC
        rx.load(1000 + leg, StreamStatistics(RATE))
    addresses = np.array([i.buffer.address for i in inbounds], np.int64) if in_c else None
    out, got = np.zeros((legs, N), np.int16), np.zeros(legs, np.uint8)
    calls = [rx.call for rx in receivers]
    t0 = time.thread_time()
    for k in range(ticks):
        for leg, (receive, ctx, pcm) in enumerate(calls):
            data = packets[leg][k]
            r = receive(ctx, data, len(data))
            if r >= 0:  # the Python buffer's path (the C one answers RX_QUEUED)
                inbounds[leg].add_pcm(r >> 16, pcm[: r & 0xFFFF].copy())
        now = time.monotonic()
        if addresses is not None:
            jitter_fast.pop_many(addresses, now, out, got)
        else:
            frames = [f for i in inbounds if (f := i.buffer.pop(now)) is not None]
            if frames:
                np.stack(frames)
    return (time.thread_time() - t0) / (ticks * legs) * 1e6


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--legs", type=int, default=16)
    ap.add_argument("--ticks", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = ap.parse_args(argv)
    if not (rtp_fast.available() and jitter_fast.available()):
        raise SystemExit("the C extension is not built (pip install -e . builds it)")
    enc = libopus.Encoder(RATE, 1, bit_rate=32000)
    payloads = [enc.encode(tone(500.0, RATE, N, amplitude=0.3, start=k * N)) for k in range(50)]
    best = {False: float("inf"), True: float("inf")}
    for _ in range(args.rounds):
        for in_c in (False, True):
            best[in_c] = min(best[in_c], run(in_c, args.legs, args.ticks, payloads))
    rows = [{"buffer": "c" if in_c else "python", "legs": args.legs, "ticks": args.ticks,
             "us_per_leg_tick": round(us, 1)} for in_c, us in best.items()]
    print_table(f"Inbound path, CPU µs per leg and tick (hot, best of {args.rounds}; {time.strftime('%H:%M:%S')})",
                rows, ["buffer", "legs", "ticks", "us_per_leg_tick"])
    write_json(args.json, rows)


if __name__ == "__main__":
    main()
