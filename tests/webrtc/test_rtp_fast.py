"""The direct RTP path's C part (signaling/rtp_fast.py, signaling/_rtpfast.c).

Parts alone: real libsrtp sessions (pylibsrtp) and libopus on real loopback sockets; the C receive path's
statistics against aiortc's own ``StreamStatistics``. Whole: real aiortc client peers of a real gateway,
mixer and clock; each client checks that what it receives is its own mix (tones), on one SSRC whose
sequence numbers and timestamps run on without a break, also across a switch between the C and Python paths.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from dataclasses import replace
from typing import Any

import numpy as np
import pylibsrtp
import pytest
from aiortc.rtcrtpreceiver import StreamStatistics
from bargein.mixer import LegRouting, Role, SupervisorMode
from bargein.mixer.tones import level_dbfs, tone
from bargein.signaling import libopus, rtp_fast, webrtc
from bargein.signaling.rtp_direct import DirectRtp
from helpers.gateway_rig import GatewayRig

pytestmark = pytest.mark.skipif(not rtp_fast.available(), reason="the C extension is not built")

HEARD, SILENT = -30.0, -50.0
CUSTOMER, AGENT, SUPERVISOR = 500.0, 750.0, 1650.0
RATE, N = 48000, 960
KEY = bytes(range(30))


def _sessions() -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    """A sender's and a receiver's SRTP session with the same key (as the two ends of a DTLS handshake)."""
    tx = pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    rx = pylibsrtp.Policy(key=KEY, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
    return pylibsrtp.Session(tx), pylibsrtp.Session(rx)


class _Owner:
    """What the send table keeps per row (a DirectRtp in the gateway): only needs to stay alive."""


def _state(seq: int, ssrc: int, ts0: int = 1000, ext: bool = True) -> dict[str, int]:
    """A row's state as DirectRtp hands it over (first byte 0x90 with a header extension, 0x80 without)."""
    return {"seq": seq, "ts0": ts0, "step": N, "frames": 0, "sent": 0, "octets": 0, "send_errors": 0, "last_ts": 0,
            "head": (0x90 if ext else 0x80) << 8 | 0x80 | 111, "ssrc": ssrc}


def _parse(clear: bytes) -> tuple[int, int, int, bytes, bytes]:
    _, _, seq, ts, ssrc = struct.unpack_from("!BBHLL", clear)
    words = int.from_bytes(clear[14:16], "big")
    ext = clear[12:16 + 4 * words]
    return seq, ts, ssrc, ext, clear[16 + 4 * words:]


def test_send_table_routes_each_group_to_its_legs_with_their_own_headers() -> None:
    """Three legs on two groups, each on its own socket: every leg gets its group's tone, under its own SSRC,
    sequence numbers and timestamps, protected so that its peer's SRTP session accepts it."""
    table = rtp_fast.SendTable()
    ext = struct.pack("!HH", 0xBEDE, 1) + bytes([0x10, ord("0"), 0, 0])  # one-byte header extension: mid "0"
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind(("127.0.0.1", 0))
    peers, rx_sessions, owners = [], [], []
    for leg in range(3):
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        tx, rx = _sessions()
        owners.append((_Owner(), tx))
        row = table.add(owners[-1][0], rtp_fast.srtp_address(tx), sender, peer.getsockname(), ext,
                        _state(seq=65534 - leg, ssrc=0x1000 + leg))  # wraps around during the test
        assert row == leg
        peers.append(peer)
        rx_sessions.append(rx)
    table.set_groups([0, 1, 2], [1, 0, 1])  # leg 1 hears group 0 (the 440 Hz mix), legs 0 and 2 group 1
    freqs = (440.0, 1200.0)
    encoders = [libopus.Encoder(RATE, 1, bit_rate=32000) for _ in freqs]
    addresses = np.array([e._enc for e in encoders], np.int64)
    decoders = [libopus.Decoder(RATE) for _ in peers]
    heard: list[list[np.ndarray]] = [[] for _ in peers]
    for frame in range(25):
        pcm = np.stack([tone(f, RATE, N, amplitude=0.3, start=frame * N) for f in freqs])
        assert table.send(addresses, pcm) == 3
        for leg, peer in enumerate(peers):
            seq, ts, ssrc, got_ext, payload = _parse(rx_sessions[leg].unprotect(peer.recv(2048)))
            assert seq == (65534 - leg + frame) & 0xFFFF
            assert ts == 1000 + frame * N and ssrc == 0x1000 + leg and got_ext == ext
            heard[leg].append(decoders[leg].decode(payload))
    for leg, want in enumerate((1200.0, 440.0, 1200.0)):
        audio = np.concatenate(heard[leg][5:])
        other = 440.0 if want == 1200.0 else 1200.0
        assert level_dbfs(audio, want, RATE) > HEARD and level_dbfs(audio, other, RATE) < SILENT
    row = table.legs[0]
    assert row[rtp_fast.L_SENT] == 25 and row[rtp_fast.L_ERRORS] == 0 and row[rtp_fast.L_LAST_TS] == 1000 + 24 * N
    # a freed row sends nothing, and hands its state back
    state = table.remove(1)
    assert state["seq"] == (65533 + 25) & 0xFFFF and state["frames"] == 25 and state["sent"] == 25
    assert table.send(addresses, pcm) == 2
    table.close()
    for s in (sender, *peers):
        s.close()


def test_send_table_sends_over_ipv6() -> None:
    """An IPv6 pair (the destination is built as a sockaddr_in6 for C): the packet arrives and unprotects."""
    try:
        peer = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        peer.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    peer.settimeout(5)
    sender = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sender.bind(("::1", 0))
    tx, rx = _sessions()
    table = rtp_fast.SendTable()
    table.add(_Owner(), rtp_fast.srtp_address(tx), sender, peer.getsockname()[:2], b"", _state(seq=1, ssrc=9, ext=False))
    table.set_groups([0], [0])
    enc = libopus.Encoder(RATE, 1)
    assert table.send(np.array([enc._enc], np.int64), np.zeros((1, N), np.int16)) == 1
    clear = rx.unprotect(peer.recv(2048))
    assert struct.unpack_from("!HLL", clear, 2) == (1, 1000, 9) and clear[0] == 0x80
    table.close()
    sender.close()
    peer.close()


def test_a_failed_send_counts_an_error_and_keeps_the_sequence() -> None:
    table = rtp_fast.SendTable()
    tx, _ = _sessions()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    table.add(_Owner(), rtp_fast.srtp_address(tx), sock, ("127.0.0.1", 9), b"", _state(seq=7, ssrc=1, ext=False))
    table.set_groups([0], [0])
    os.close(int(table.legs[0, rtp_fast.L_FD]))  # the socket is gone under the table
    enc = libopus.Encoder(RATE, 1)
    assert table.send(np.array([enc._enc], np.int64), np.zeros((1, N), np.int16)) == 0
    assert table.legs[0, rtp_fast.L_ERRORS] == 1 and table.legs[0, rtp_fast.L_SEQ] == 7
    table._fds.clear()  # already closed
    sock.close()


def _rtp(seq: int, ts: int, ssrc: int, payload: bytes, pt: int = 111) -> bytes:
    return struct.pack("!BBHLL", 0x80, pt, seq, ts, ssrc) + payload


def test_receiver_decodes_and_keeps_aiortcs_statistics() -> None:
    """The C receive path against aiortc's StreamStatistics fed the same packets (in order, reordered, a wrap of
    the sequence number, a duplicate), and what it refuses: tampered or replayed SRTP, other payload types."""
    tx, rx = _sessions()
    decoder = libopus.Decoder(RATE)
    receiver = rtp_fast.Receiver(rtp_fast.srtp_address(rx), decoder, 111, 48000)
    enc = libopus.Encoder(RATE, 1, bit_rate=32000)
    ssrc = 0xCAFE
    mine, theirs = StreamStatistics(48000), StreamStatistics(48000)
    packets = {}
    for k in range(12):  # sent in order, received out of order
        seq = (65530 + k) & 0xFFFF
        packets[seq] = tx.protect(_rtp(seq, k * N, ssrc, enc.encode(tone(700.0, RATE, N, amplitude=0.3, start=k * N))))
    assert receiver.receive(packets[65530]) == rtp_fast.RX_NEW_SSRC  # nothing done yet: the caller swaps rows
    receiver.load(ssrc, mine)
    order = [65530, 65531, 65533, 65532, 65534, 65535, 0, 1, 3, 2, 4, 5]
    heard = []
    for seq in order:
        r = receiver.receive(packets[seq])
        assert r & 0xFFFF == N and receiver.info[rtp_fast.I_SEQ] == seq
        assert r >> 16 == receiver.info[rtp_fast.I_TS] == ((seq - 65530) & 0xFFFF) * N
        heard.append(receiver.pcm(N))

        class Seen:
            sequence_number, timestamp = seq, ((seq - 65530) & 0xFFFF) * N

        theirs.add(Seen)  # type: ignore[arg-type]
    receiver.store(mine)
    for field in ("base_seq", "max_seq", "cycles", "packets_received", "_last_timestamp"):
        assert getattr(mine, field) == getattr(theirs, field), field
    assert mine.packets_expected == theirs.packets_expected and mine.packets_lost == theirs.packets_lost
    assert abs(mine._jitter_q4 - theirs._jitter_q4) <= 16 * 48  # both measure arrival jitter (to ~1 ms here)
    assert level_dbfs(np.concatenate(heard[3:]), 700.0, RATE) > HEARD

    assert receiver.receive(packets[5]) == rtp_fast.RX_UNPROTECT  # a replay
    tampered = bytearray(tx.protect(_rtp(6, 16 * N, ssrc, b"\x01\x02\x03")))
    tampered[14] ^= 1
    assert receiver.receive(bytes(tampered)) == rtp_fast.RX_UNPROTECT
    assert receiver.receive(tx.protect(_rtp(7, 17 * N, ssrc, b"", pt=0))) == rtp_fast.RX_NOT_OURS
    assert receiver.receive(bytes([0x80, 200]) + bytes(30)) == rtp_fast.RX_NOT_OURS  # RTCP
    assert receiver.receive(tx.protect(_rtp(8, 18 * N, ssrc, b""))) == rtp_fast.RX_EMPTY


# ---------------------------------------------------------------------------------------------- real legs
class SeqWatch:
    """Records the RTP header of every packet a client receives (its receiver's packet handler, wrapped)."""

    def __init__(self, pc: Any) -> None:
        self.packets: list[tuple[int, int, int]] = []
        receiver = next(t.receiver for t in pc.getTransceivers() if t.kind == "audio")
        handle = receiver._handle_rtp_packet

        async def watched(packet: Any, arrival_time_ms: int) -> None:
            self.packets.append((packet.ssrc, packet.sequence_number, packet.timestamp))
            await handle(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = watched

    def check(self) -> None:
        """One SSRC; every packet's timestamp is a whole number of frames on from the first, exactly as many
        as its sequence number is on (so no reuse, no jump, no step that is not one frame)."""
        assert len(self.packets) > 20
        assert len({ssrc for ssrc, _, _ in self.packets}) == 1
        _, seq0, ts0 = self.packets[0]
        numbers = []
        for _, seq, ts in self.packets:
            k = (seq - seq0) & 0xFFFF
            assert (ts - ts0) & 0xFFFFFFFF == k * N, (seq, ts)
            numbers.append(k)
        assert len(set(numbers)) == len(numbers)  # never the same sequence number twice
        assert sorted(numbers) == numbers  # loopback keeps order


async def _join(rig: GatewayRig, routing: LegRouting | Role, freq: float) -> tuple[int, Any, SeqWatch]:
    leg, client = await rig.join(routing, freq)
    return leg, client, SeqWatch(client.pc)


async def test_c_path_carries_each_legs_mix_on_one_unbroken_stream(rig: GatewayRig) -> None:
    cust_leg, customer, cust_seq = await _join(rig, Role.CUSTOMER, CUSTOMER)
    agent_leg, agent, agent_seq = await _join(rig, Role.AGENT, AGENT)
    sup_leg, sup, sup_seq = await _join(rig, LegRouting(Role.SUPERVISOR, SupervisorMode.MONITOR), SUPERVISOR)
    await asyncio.gather(customer.fresh(40), agent.fresh(40), sup.fresh(40))
    assert customer.level(AGENT) > HEARD and customer.level(CUSTOMER) < SILENT and customer.level(SUPERVISOR) < SILENT
    assert agent.level(CUSTOMER) > HEARD and agent.level(AGENT) < SILENT and agent.level(SUPERVISOR) < SILENT
    assert sup.level(CUSTOMER) > HEARD and sup.level(AGENT) > HEARD
    for leg in (cust_leg, agent_leg, sup_leg):
        direct = rig.gateway.legs[leg].direct
        assert isinstance(direct, DirectRtp) and direct.fast and direct._rx is not None, "not on the C path"
        assert direct.sent > 30 and direct.send_errors == 0 and direct.received > 30 and direct.unprotect_errors == 0
    # a routing change reaches the C path's plan (the supervisor barges in)
    rig.engine.set_routing(sup_leg, replace(rig.engine.routing_of(sup_leg), mode=SupervisorMode.BARGE))
    await asyncio.gather(customer.fresh(30), agent.fresh(30))
    assert customer.level(SUPERVISOR) > HEARD and agent.level(SUPERVISOR) > HEARD
    for watch in (cust_seq, agent_seq, sup_seq):
        watch.check()


async def test_listeners_hearing_the_same_mix_share_one_encode_on_the_c_path(rig: GatewayRig) -> None:
    await rig.join(Role.CUSTOMER, CUSTOMER)
    await rig.join(Role.AGENT, AGENT)
    _, sup1, seq1 = await _join(rig, LegRouting(Role.SUPERVISOR, SupervisorMode.MONITOR), SUPERVISOR)
    _, sup2, seq2 = await _join(rig, LegRouting(Role.SUPERVISOR, SupervisorMode.MONITOR), 2200.0)
    await asyncio.gather(sup1.fresh(30), sup2.fresh(30))
    encodes, deliveries = rig.gateway.encodes, rig.gateway.deliveries
    await asyncio.gather(sup1.fresh(30), sup2.fresh(30))
    assert rig.gateway.deliveries - deliveries >= 4 * (rig.gateway.encodes - encodes) // 3
    assert rig.gateway.deliveries - deliveries > rig.gateway.encodes - encodes
    for sup in (sup1, sup2):
        assert sup.level(CUSTOMER) > HEARD and sup.level(AGENT) > HEARD
    assert sup1.level(2200.0) < SILENT and sup2.level(SUPERVISOR) < SILENT
    seq1.check()
    seq2.check()  # same payload, each leg its own SSRC and numbers


async def test_a_leg_moves_between_the_c_and_python_paths_without_a_break(rig: GatewayRig) -> None:
    cust_leg, customer, watch = await _join(rig, Role.CUSTOMER, CUSTOMER)
    await rig.join(Role.AGENT, AGENT)
    await customer.fresh(20)
    state = rig.gateway.legs[cust_leg]
    assert isinstance(state.direct, DirectRtp) and state.direct.fast
    sent = state.direct.sent
    state.direct.leave_fast()  # as when its pair or transport changed
    state.fast_refused = True
    rig.gateway._legs_epoch += 1
    await customer.fresh(20)
    assert not state.direct.fast and state.direct.sent > sent + 10  # the Python path went on from the table's count
    state.fast_refused = False
    rig.gateway._legs_epoch += 1
    await customer.fresh(20)
    assert state.direct.fast
    assert customer.level(AGENT) > HEARD
    watch.check()


async def test_without_the_c_path_legs_use_the_python_direct_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtp_fast, "available", lambda: False)
    rig = GatewayRig(48000, encode_inline=True)
    rig.clock.start()
    try:
        assert rig.gateway._table is None
        cust_leg, customer, watch = await _join(rig, Role.CUSTOMER, CUSTOMER)
        _, agent, _ = await _join(rig, Role.AGENT, AGENT)
        await asyncio.gather(customer.fresh(30), agent.fresh(30))
        assert customer.level(AGENT) > HEARD and agent.level(CUSTOMER) > HEARD
        direct = rig.gateway.legs[cust_leg].direct
        assert isinstance(direct, DirectRtp) and not direct.fast and direct._rx is None and direct.sent > 25
        watch.check()
    finally:
        await rig.close()


def test_the_gateway_picks_the_c_path_only_for_inline_shared_encodes() -> None:
    assert webrtc.WebRTCGateway(encode_inline=True)._table is not None
    assert webrtc.WebRTCGateway(encode_inline=False)._table is None  # the encode thread keeps the Python path
    assert webrtc.WebRTCGateway(encode_inline=True, shared_encode=False)._table is None


def test_receiver_puts_frames_in_the_c_buffer_as_the_python_inbound_would() -> None:
    """With the leg's adaptive buffer in C, the receiver puts each whole, aligned 20 ms frame straight into it and
    hands back the rest (10 ms packets here, cut by the inbound): what the buffer plays is what the Python inbound
    on the Python buffer plays, given the same packets at the same times (reordered, across a timestamp wrap)."""
    from bargein.signaling import jitter_fast
    from bargein.signaling.jitter import AdaptiveJitterBuffer
    from bargein.signaling.opus_inbound import OpusInbound

    if not jitter_fast.available():
        pytest.skip("the C adaptive buffer was not built")
    tx, rx = _sessions()
    _, rx2 = _sessions()
    fast = OpusInbound(jitter_fast.FastJitterBuffer(N), RATE)
    receiver = rtp_fast.Receiver(rtp_fast.srtp_address(rx), fast.decoder, 111, 48000, fast.jitter_buffer, RATE)
    arrival = [0.0]
    ref = OpusInbound(AdaptiveJitterBuffer(N), RATE, clock=lambda: arrival[0])
    ref_receiver = rtp_fast.Receiver(rtp_fast.srtp_address(rx2), ref.decoder, 111, 48000)
    ssrc, ts0 = 0xBEEF, 2**32 - 7 * N
    enc20, enc10 = libopus.Encoder(RATE, 1, bit_rate=32000), libopus.Encoder(RATE, 1, bit_rate=32000)
    packets, at = [], 0
    for k in range(40):
        size = N // 2 if 12 <= k < 16 else N  # four 10 ms packets: two frames' worth, cut by the inbound
        pcm = tone(600.0 + 10 * k, RATE, size, amplitude=0.3, start=at)
        payload = (enc10 if size < N else enc20).encode(pcm)
        packets.append(tx.protect(_rtp(k, (ts0 + at) & 0xFFFFFFFF, ssrc, payload)))
        at += size
    packets[20], packets[21] = packets[21], packets[20]
    for r in (receiver, ref_receiver):
        assert r.receive(packets[0]) == rtp_fast.RX_NEW_SSRC
        r.load(ssrc, StreamStatistics(48000))
    queued = cut = 0
    for p in packets:
        got = receiver.receive(p)
        if got == rtp_fast.RX_QUEUED:
            queued += 1
        else:
            assert got >= 0
            fast.add_cut(receiver.pcm(got & 0xFFFF))
            receiver.cutter_busy(not fast.cutter_idle)
            cut += 1
        arrival[0] = fast.jitter_buffer.last_packet[0]
        got = ref_receiver.receive(p)
        ref.add_pcm(got >> 16, ref_receiver.pcm(got & 0xFFFF))
    assert queued >= 30 and cut >= 4
    assert fast.packets == ref.packets == 40
    for n in range(45):
        now = arrival[0] + 0.005 + n * 0.02
        a, b = ref.buffer.pop(now), fast.buffer.pop(now)
        assert (a is None) == (b is None)
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert ref.buffer.stats == fast.buffer.stats and ref.buffer.received == 38  # 36 whole packets and 2 from halves
