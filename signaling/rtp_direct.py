"""A server leg's Opus RTP sent and received directly, once DTLS is up, without aiortc's per-packet tasks.

aiortc handles every audio packet with several coroutine hops: outbound, an ``RTCRtpSender`` task per
leg wakes for each frame, wraps it in an ``av.Packet``, builds an ``RtpPacket`` and serializes it with
its header extensions, then awaits the DTLS and ICE transports down to ``sendto``; inbound, aioice
queues each datagram for the DTLS transport's task, which unprotects, parses, routes and awaits the
receiver's handler. On a media worker carrying many legs that Python costs more than the codecs.

:class:`DirectRtp` keeps aiortc for everything but the audio packets: ICE (and its consent checks),
DTLS and its SRTP keys, RTCP (sender and receiver reports, which it keeps producing from the counters
updated here), and closing. Once the leg's DTLS transport is connected:

- **out**: :meth:`DirectRtp.send` is called by the gateway right after the tick's encode, for every
  leg in one pass; it writes the RTP header (the sender's SSRC, payload type and ``mid`` extension, as
  negotiated), protects it with the DTLS transport's SRTP session and hands it to the nominated ICE
  pair's socket. The leg's ``RTCRtpSender`` task never gets a frame (it waits, idle); its RTCP task
  sends sender reports from the counters this updates.
- **in**: the ICE connection's ``data_received`` is wrapped: SRTP packets of the negotiated Opus
  payload type are unprotected and handed straight to the leg's :class:`~.opus_inbound.OpusInbound`
  (decode + adaptive buffer) with the receiver's RTCP statistics updated, so its receiver reports
  stay right; anything else (DTLS, RTCP, other payload types, packets before the keys exist) takes
  aiortc's own path.

This reads private attributes of aiortc 1.16 / aioice 0.13 (pinned in pyproject.toml): :meth:`attach`
checks each one and returns None when they are not there, and the gateway then keeps aiortc's path.
"""

from __future__ import annotations

import random
import struct
import time
from typing import Any, Protocol

import pylibsrtp
import structlog
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import HeaderExtensions

from . import libopus, rtp_fast
from .opus_inbound import RTP_RATE

log = structlog.get_logger("bargein.webrtc")

_HEADER = struct.Struct("!BBHLL")
_NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)


def ntp_now() -> int:
    """The NTP timestamp (64-bit fixed point) RTCP sender reports carry."""
    return int((time.time() + _NTP_EPOCH_OFFSET) * (1 << 32))


class _Seen:
    """What aiortc's ``StreamStatistics.add`` reads of a packet (one reused per leg)."""

    __slots__ = ("sequence_number", "timestamp")

    def __init__(self) -> None:
        self.sequence_number = 0
        self.timestamp = 0


class InboundAudio(Protocol):
    """Where a direct leg's inbound payloads go: an :class:`~.opus_inbound.OpusInbound`, or anything that takes
    payloads (a benchmark's caller only counts them). With a ``decoder``, the C receive path decodes with it
    and hands over PCM (``add_pcm``); without one, payloads go to ``add_payload``. With a ``jitter_buffer`` too
    (its adaptive buffer in C), the C receive path puts each whole, aligned frame straight into it and hands
    over only what must be cut (``add_cut``, the packet already timed and unwrapped there)."""

    @property
    def decoder(self) -> libopus.Decoder | None: ...

    @property
    def jitter_buffer(self) -> Any: ...

    @property
    def cutter_idle(self) -> bool: ...

    def add_cut(self, pcm: Any) -> None: ...

    def add_payload(self, timestamp: int, data: bytes) -> None: ...

    def add_pcm(self, timestamp: int, pcm: Any, decode_failed: bool = False) -> None: ...


class DirectRtp:
    """One leg's audio RTP, both ways, on aiortc's connected transports (see the module docstring)."""

    def __init__(self, transceiver: Any, dtls: Any, connection: Any, inbound: InboundAudio | None,
                 samples_per_frame: int, rate: int) -> None:
        sender, receiver = transceiver.sender, transceiver.receiver
        opus = next(c for c in transceiver._codecs if c.mimeType.lower() == "audio/opus")
        self.pt = opus.payloadType
        self.ssrc: int = sender._ssrc
        self._sender = sender
        self._dtls = dtls
        self._nominated: dict[int, Any] = connection._nominated
        profile, value = sender._RTCRtpSender__rtp_header_extensions_map.set(
            HeaderExtensions(mid=sender._RTCRtpSender__mid))
        self._ext = struct.pack("!HH", profile, len(value) >> 2) + value if value else b""
        self._b0 = 0x90 if self._ext else 0x80  # version 2, extension bit when there is one
        self._b1 = 0x80 | self.pt  # marker on every packet, as aiortc's sender does for audio
        self._seq = random.getrandbits(15)  # lower half: no wrap-around early on (as aiortc)
        self._ts0 = random.getrandbits(32)
        self._step = samples_per_frame * RTP_RATE // rate  # RTP clock ticks per frame
        self._frames = 0
        self._sent = self._octets = self._send_errors = 0
        self._last_ts = 0
        # the C path out (rtp_fast.SendTable), once the gateway moves the leg there
        self._table: rtp_fast.SendTable | None = None
        self._row = -1
        self._pair: Any = None
        self._tx_session: Any = None
        # inbound
        self.inbound = inbound
        self._streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams
        self._seen = _Seen()
        self.received = self.unprotect_errors = 0
        self._connection = connection
        self._aiortc_data_received = connection.data_received
        self._protocol: Any = None
        # the C path in: unprotect, parse, statistics and decode in one call per datagram
        self._rx: rtp_fast.Receiver | None = None
        self._rx_session: Any = None
        self._rx_ssrc = -1
        self._fused = False  # the C receive path puts frames in the inbound's C buffer itself
        if inbound is not None and rtp_fast.available() and inbound.decoder is not None:
            self._rx_session = dtls._rx_srtp
            fused = getattr(inbound, "jitter_buffer", None)
            self._rx = rtp_fast.Receiver(rtp_fast.srtp_address(self._rx_session), inbound.decoder, self.pt, RTP_RATE,
                                         fused, getattr(inbound, "rate", 0) if fused is not None else 0)
            self._fused = fused is not None
            if self._fused:  # what aiortc's path left in the cutter goes first
                self._rx.cutter_busy(not inbound.cutter_idle)  # type: ignore[attr-defined]
        self._on_rtp = self._data_received if self._rx is None else self._data_received_fast
        if inbound is not None:
            connection.data_received = self._on_rtp
            # and before aioice's own datagram handler tries to parse each packet as STUN, on the socket
            # the peer sends to (another one's packets still reach the hook above)
            pair = connection._nominated.get(1)
            if pair is not None and "datagram_received" not in vars(pair.protocol):
                self._protocol = pair.protocol
                self._aioice_datagram = pair.protocol.datagram_received
                pair.protocol.datagram_received = self._datagram if self._rx is None else self._datagram_fast

    # ------------------------------------------------------------------ attach
    @classmethod
    def attach(cls, pc: Any, inbound: InboundAudio | None, samples_per_frame: int, rate: int) -> DirectRtp | None:
        """The direct path for ``pc``'s audio transceiver once its DTLS transport is connected; None while it
        is not yet, and :data:`UNAVAILABLE` when aiortc's internals are not the pinned ones."""
        try:
            transceiver = next(t for t in pc.getTransceivers() if t.kind == "audio")
            sender = transceiver.sender
            dtls = sender.transport
            if dtls.state != "connected" or dtls._tx_srtp is None or dtls._rx_srtp is None:
                return None
            if not sender._RTCRtpSender__started:  # its mid and header extensions are set when it starts
                return None
            connection = dtls.transport._connection
            if not connection._nominated:
                return None
            direct = cls(transceiver, dtls, connection, inbound, samples_per_frame, rate)
        except (AttributeError, StopIteration, TypeError) as exc:
            log.warning("webrtc.direct_rtp_unavailable", error=repr(exc))
            return UNAVAILABLE
        return direct

    def detach(self) -> None:
        """Give inbound packets back to aiortc (the leg is closing)."""
        if self._connection.data_received == self._on_rtp:
            self._connection.data_received = self._aiortc_data_received
        self.sync_stats()
        if self._table is not None:
            self.leave_fast()
        if self._protocol is not None:
            vars(self._protocol).pop("datagram_received", None)
            self._protocol = None

    # ------------------------------------------------------------------ out
    @property
    def sent(self) -> int:
        return int(self._table.legs[self._row, rtp_fast.L_SENT]) if self._table is not None else self._sent

    @property
    def octets(self) -> int:
        return int(self._table.legs[self._row, rtp_fast.L_OCTETS]) if self._table is not None else self._octets

    @property
    def send_errors(self) -> int:
        return int(self._table.legs[self._row, rtp_fast.L_ERRORS]) if self._table is not None else self._send_errors

    def send(self, payload: bytes) -> bool:
        """One encoded 20 ms frame as one RTP packet; False when the transport is gone (the leg is closing)."""
        dtls = self._dtls
        pair = self._nominated.get(1)
        if pair is None or dtls._state is not DtlsState.CONNECTED:
            return False
        ts = (self._ts0 + self._frames * self._step) & 0xFFFFFFFF
        packet = _HEADER.pack(self._b0, self._b1, self._seq, ts, self.ssrc) + self._ext + payload
        try:
            pair.protocol.transport.sendto(dtls._tx_srtp.protect(packet), pair.remote_addr)
        except (pylibsrtp.Error, OSError, AttributeError):  # a closing socket: the leg is being torn down
            self._send_errors += 1
            return False
        self._seq = (self._seq + 1) & 0xFFFF
        self._frames += 1
        self._sent += 1
        self._octets += len(payload)
        self._last_ts = ts
        if self._sent & 7 == 1:  # what its RTCP task puts in sender reports (every 0.5-1.5 s): fresh to 160 ms
            self.report()
        return True

    def report(self) -> None:
        """Hand the sender's RTCP task what it puts in sender reports (the C path: every 8 ticks, by the gateway)."""
        if self._table is not None:
            row = self._table.legs[self._row]
            self._last_ts, self._sent, self._octets = int(row[rtp_fast.L_LAST_TS]), int(row[rtp_fast.L_SENT]), \
                int(row[rtp_fast.L_OCTETS])
            if not self._sent:
                return
        s = self._sender
        s._RTCRtpSender__ntp_timestamp = ntp_now()
        s._RTCRtpSender__rtp_timestamp = self._last_ts
        s._RTCRtpSender__packet_count = self._sent
        s._RTCRtpSender__octet_count = self._octets

    # ------------------------------------------------------------------ out, the C path
    @property
    def row(self) -> int:
        """Its row in the :class:`~.rtp_fast.SendTable` while :attr:`fast` (-1 otherwise)."""
        return self._row

    @property
    def fast(self) -> bool:
        """Whether the gateway sends this leg's packets through its :class:`~.rtp_fast.SendTable`."""
        return self._table is not None

    def go_fast(self, table: rtp_fast.SendTable) -> bool:
        """Move this leg's sending onto ``table`` (its state goes with it); False when it cannot go."""
        pair = self._nominated.get(1)
        if pair is None or self._dtls._state is not DtlsState.CONNECTED:
            return False
        session = self._dtls._tx_srtp
        state = {"seq": self._seq, "ts0": self._ts0, "step": self._step, "frames": self._frames, "sent": self._sent,
                 "octets": self._octets, "send_errors": self._send_errors, "last_ts": self._last_ts,
                 "head": self._b0 << 8 | self._b1, "ssrc": self.ssrc}
        try:
            sock = pair.protocol.transport.get_extra_info("socket")
            row = table.add(self, rtp_fast.srtp_address(session), sock, pair.remote_addr, self._ext, state)
        except (AttributeError, TypeError, ValueError, OSError) as exc:
            log.warning("webrtc.rtp_fast_refused", error=repr(exc))
            return False
        self._table, self._row, self._pair, self._tx_session = table, row, pair, session
        return True

    def leave_fast(self) -> None:
        """Back to :meth:`send` in Python, going on from the table's sequence number and counters."""
        if self._table is None:
            return
        state = self._table.remove(self._row)
        self._seq, self._frames, self._sent = state["seq"], state["frames"], state["sent"]
        self._octets, self._send_errors, self._last_ts = state["octets"], state["send_errors"], state["last_ts"]
        self._table, self._row, self._pair, self._tx_session = None, -1, None, None

    def revalidate(self) -> bool:
        """Every 25 ticks: the socket, destination and SRTP sessions the C path was given must still be the leg's
        (the nominated pair can change, a transport can close); each direction that no longer matches goes back
        to Python. True when the sending side left the C path."""
        dtls = self._dtls
        if self._rx is not None and dtls._rx_srtp is not self._rx_session:
            self.sync_stats()
            self._rx = None
            if self._connection.data_received == self._on_rtp:
                self._connection.data_received = self._data_received
            self._on_rtp = self._data_received
        if self._table is not None and not (self._nominated.get(1) is self._pair and dtls._state is DtlsState.CONNECTED
                                            and dtls._tx_srtp is self._tx_session):
            self.leave_fast()
            return True
        return False

    def skip(self) -> None:
        """A frame not sent (nothing encoded this tick): the RTP clock still moves on."""
        self._frames += 1

    # ------------------------------------------------------------------ in
    def _datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if data and 127 < data[0] < 192:  # RTP or RTCP: never STUN (whose first two bits are 0)
            self._on_rtp(data, 1)
        else:
            self._aioice_datagram(data, addr)

    def _data_received(self, data: bytes, component: int) -> None:
        if len(data) < 12 or not 127 < data[0] < 192 or (data[1] & 0x7F) != self.pt or 192 <= data[1] <= 208:
            self._aiortc_data_received(data, component)  # DTLS, RTCP, another payload type: aiortc's path
            return
        try:
            clear = self._dtls._rx_srtp.unprotect(data)
        except pylibsrtp.Error:
            self.unprotect_errors += 1  # aiortc drops these too
            return
        b0 = clear[0]
        _, _, seq, ts, ssrc = _HEADER.unpack_from(clear)
        start = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:  # header extension: skip it
            if len(clear) < start + 4:
                return
            start += 4 + 4 * int.from_bytes(clear[start + 2:start + 4], "big")
        end = len(clear) - (clear[-1] if b0 & 0x20 else 0)
        if end < start:
            return
        self.received += 1
        stats = self._streams.get(ssrc)  # what the receiver's RTCP task puts in receiver reports
        if stats is None:
            stats = self._streams[ssrc] = StreamStatistics(RTP_RATE)
        seen = self._seen
        seen.sequence_number, seen.timestamp = seq, ts
        stats.add(seen)  # type: ignore[arg-type]
        assert self.inbound is not None
        self.inbound.add_payload(ts, clear[start:end])

    def _datagram_fast(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """:meth:`_datagram` with the C receive path inlined (this runs for every packet of the leg)."""
        if data and 127 < data[0] < 192:
            if self._rx is None:  # left the C path since this hook was set
                self._data_received(data, 1)
                return
            receive, ctx, pcm = self._rx.call
            r = receive(ctx, data, len(data))
            if r == rtp_fast.RX_QUEUED:  # the usual case: it is in the leg's buffer already
                self.received += 1
            elif r >= 0:
                self._decoded(r, pcm[: r & 0xFFFF].copy())
            else:
                self._rx_other(r, data, 1)
        else:
            self._aioice_datagram(data, addr)

    def _data_received_fast(self, data: bytes, component: int) -> None:
        """:meth:`_data_received` in one C call (:class:`~.rtp_fast.Receiver`)."""
        rx = self._rx
        assert rx is not None and self.inbound is not None
        r = rx.receive(data)
        if r == rtp_fast.RX_QUEUED:
            self.received += 1
        elif r >= 0:
            self._decoded(r, rx.pcm(r & 0xFFFF))
        else:
            self._rx_other(r, data, component)

    def _decoded(self, r: int, pcm: Any) -> None:
        """A packet the C path decoded (``r``: its timestamp << 16 | samples) and did not put in the leg's buffer.
        With the buffer in C it was timed and unwrapped there, and the inbound cuts it (not one aligned frame); while
        the cutter holds samples, the C path hands every packet back. Otherwise the inbound takes it whole."""
        assert self._rx is not None and self.inbound is not None
        self.received += 1
        if self._fused:
            self.inbound.add_cut(pcm)
            self._rx.cutter_busy(not self.inbound.cutter_idle)
        else:
            self.inbound.add_pcm(r >> 16, pcm)

    def _rx_other(self, n: int, data: bytes, component: int) -> None:
        """What the C receive path did not decode (see rtp_fast.RX_*)."""
        rx = self._rx
        assert rx is not None and self.inbound is not None
        if n == rtp_fast.RX_NOT_OURS:
            self._aiortc_data_received(data, component)
        elif n == rtp_fast.RX_NEW_SSRC:  # the first packet, or the peer's SSRC changed: swap statistics rows
            self.sync_stats()
            ssrc = int(rx.info[rtp_fast.I_SSRC])
            stats = self._streams.get(ssrc)
            if stats is None:
                stats = self._streams[ssrc] = StreamStatistics(RTP_RATE)
            rx.load(ssrc, stats)
            self._rx_ssrc = ssrc
            self._data_received_fast(data, component)
        elif n == rtp_fast.RX_UNPROTECT:
            self.unprotect_errors += 1  # aiortc drops these too
        elif n in (rtp_fast.RX_DECODE, rtp_fast.RX_EMPTY):  # a corrupt packet is a lost one: concealed
            self.received += 1
            self.inbound.add_pcm(int(rx.info[rtp_fast.I_TS]), None, decode_failed=n == rtp_fast.RX_DECODE)
        # RX_MALFORMED: dropped, as the Python path does

    def sync_stats(self) -> None:
        """Copy the C path's receiver statistics into aiortc's (its receiver reports read those): every 25 ticks."""
        if self._rx is not None and self._rx_ssrc >= 0:
            stats = self._streams.get(self._rx_ssrc)
            if stats is not None:
                self._rx.store(stats)


class _Unavailable:
    """Marks a leg whose aiortc internals are not the pinned ones: it keeps aiortc's own path."""


UNAVAILABLE: Any = _Unavailable()
