"""CPU per packet of a server leg's direct RTP work, Python path vs the C path (signaling/rtp_fast.py).

    python -m benchmarks.rtp_path [--legs 16] [--ticks 500] [--json PATH]

Out, per tick: one Opus encode per leg (every leg its own mix, the usual case), then each leg's RTP header,
SRTP protect (libsrtp through pylibsrtp) and ``sendto`` on a loopback socket, done as ``DirectRtp.send``
does it in Python, and as one ``SendTable.send`` call. In, per packet: SRTP unprotect, header parse,
aiortc's ``StreamStatistics.add`` and the Opus decode, as ``DirectRtp._data_received`` does it, and as one
``Receiver.receive`` call; and the codec alone (``codec only``: the encodes, the decodes). CPU time of this
thread (``time.thread_time``), best of 3 runs; the codec's time is in every row (the same libopus), so a
path's own cost is its row minus ``codec only``.
"""

from __future__ import annotations

import argparse
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pylibsrtp
from aiortc.rtcrtpreceiver import StreamStatistics
from bargein.mixer.tones import tone
from bargein.signaling import libopus, rtp_fast
from bargein.signaling.opus_voice import LIVE_BANDWIDTH, LIVE_BIT_RATE, LIVE_COMPLEXITY

from ._report import console, print_table, write_json

RATE, N, PT = 48000, 960, 111
KEY = bytes(range(30))
HEADER = struct.Struct("!BBHLL")


class _Seen:
    __slots__ = ("sequence_number", "timestamp")


def _sessions() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    tx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    rx = pylibsrtp.Session(pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND))
    return tx, rx


def _encoder() -> libopus.Encoder:
    return libopus.Encoder(RATE, 1, bit_rate=LIVE_BIT_RATE, complexity=LIVE_COMPLEXITY, max_bandwidth=LIVE_BANDWIDTH)


def _best(run, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        run()
        best = min(best, time.thread_time() - t0)
    return best


def measure(legs: int, ticks: int) -> list[dict[str, object]]:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)  # overflows quietly: sends never block
    out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out.bind(("127.0.0.1", 0))
    out.setblocking(False)
    dest = sink.getsockname()
    mixes = np.stack([tone(300.0 + 50 * i, RATE, N, amplitude=0.3) for i in range(legs)])

    # ---- out, Python (as DirectRtp.send after an encode per group)
    py_enc = [_encoder() for _ in range(legs)]
    py_tx = [_sessions()[0] for _ in range(legs)]
    seq = [0] * legs

    def send_python() -> None:
        for _ in range(ticks):
            for i in range(legs):
                payload = py_enc[i].encode(mixes[i])
                packet = HEADER.pack(0x80, 0x80 | PT, seq[i], seq[i] * N, 1000 + i) + payload
                try:
                    out.sendto(py_tx[i].protect(packet), dest)
                except OSError:
                    pass
                seq[i] = (seq[i] + 1) & 0xFFFF

    # ---- out, C
    table = rtp_fast.SendTable()
    c_enc = [_encoder() for _ in range(legs)]
    c_tx = [_sessions()[0] for _ in range(legs)]
    for i in range(legs):
        table.add(object(), rtp_fast.srtp_address(c_tx[i]), out, dest, b"",
                  {"seq": 0, "ts0": 0, "step": N, "frames": 0, "sent": 0, "octets": 0, "send_errors": 0, "last_ts": 0,
                   "head": 0x80 << 8 | 0x80 | PT, "ssrc": 2000 + i})
    table.set_groups(list(range(legs)), list(range(legs)))
    encoders = np.array([e._enc for e in c_enc], np.int64)

    def send_c() -> None:
        for _ in range(ticks):
            table.send(encoders, mixes)

    codec_enc = [_encoder() for _ in range(legs)]

    def encode_only() -> None:
        for _ in range(ticks):
            for i in range(legs):
                codec_enc[i].encode(mixes[i])

    t_send_py, t_send_c, t_encode = _best(send_python), _best(send_c), _best(encode_only)
    table.close()

    # ---- in: packets of one leg's stream, protected once for each path's session
    enc = _encoder()
    payloads = [enc.encode(tone(440.0, RATE, N, amplitude=0.3, start=k * N)) for k in range(ticks * 3)]
    tx_py, rx_py = _sessions()
    tx_c, rx_c = _sessions()
    plain = [HEADER.pack(0x80, PT, k & 0xFFFF, k * N, 77) + p for k, p in enumerate(payloads)]
    packets_py = [tx_py.protect(p) for p in plain]
    packets_c = [tx_c.protect(p) for p in plain]
    dec_py, dec_c = libopus.Decoder(RATE), libopus.Decoder(RATE)
    runs = iter(range(3))

    def receive_python() -> None:
        k = next(runs)
        stats, seen = StreamStatistics(RATE), _Seen()
        for data in packets_py[k * ticks:(k + 1) * ticks]:
            clear = rx_py.unprotect(data)
            _, _, s, ts, ssrc = HEADER.unpack_from(clear)
            seen.sequence_number, seen.timestamp = s, ts
            stats.add(seen)  # type: ignore[arg-type]
            dec_py.decode(clear[12:])

    receiver = rtp_fast.Receiver(rtp_fast.srtp_address(rx_c), dec_c, PT, RATE)
    receiver.load(77, StreamStatistics(RATE))
    runs_c = iter(range(3))

    def receive_c() -> None:
        k = next(runs_c)
        for data in packets_c[k * ticks:(k + 1) * ticks]:
            r = receiver.receive(data)
            receiver.pcm(r & 0xFFFF)

    dec_codec = libopus.Decoder(RATE)
    runs_codec = iter(range(3))

    def decode_only() -> None:
        k = next(runs_codec)
        for p in payloads[k * ticks:(k + 1) * ticks]:
            dec_codec.decode(p)

    t_recv_py, t_recv_c, t_decode = _best(receive_python), _best(receive_c), _best(decode_only)
    for s in (sink, out):
        s.close()
    per = 1e6 / (ticks * legs)
    return [
        {"direction": "out", "legs": legs, "path": "python", "us_per_packet": round(t_send_py * per, 1)},
        {"direction": "out", "legs": legs, "path": "c", "us_per_packet": round(t_send_c * per, 1)},
        {"direction": "out", "legs": legs, "path": "codec only", "us_per_packet": round(t_encode * per, 1)},
        {"direction": "in", "legs": 1, "path": "python", "us_per_packet": round(t_recv_py * 1e6 / ticks, 1)},
        {"direction": "in", "legs": 1, "path": "c", "us_per_packet": round(t_recv_c * 1e6 / ticks, 1)},
        {"direction": "in", "legs": 1, "path": "codec only", "us_per_packet": round(t_decode * 1e6 / ticks, 1)},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--legs", type=int, default=16)
    ap.add_argument("--ticks", type=int, default=500)
    ap.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = ap.parse_args()
    if not rtp_fast.available():
        console.print("[red]the C path is not available (extension not built, or BARGEIN_RTP_FAST=0)[/]")
        raise SystemExit(2)
    rows = measure(args.legs, args.ticks)
    print_table("direct RTP work per packet (CPU µs, codec included)", rows,
                ("direction", "legs", "path", "us_per_packet"))
    write_json(args.json, rows)


if __name__ == "__main__":
    main()
