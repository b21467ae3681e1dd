"""Media faults for tests."""

from __future__ import annotations

from bargein.signaling.webrtc_client import ClientLeg


def vanish(leg: ClientLeg) -> None:
    """Drop every datagram ``leg`` sends from now on, without a BYE, DTLS close or ICE goodbye: what the
    server sees when a browser is killed or its network goes away. Reaches into aiortc's ICE transport
    (``aioice.Connection``), which is why it lives with the tests and not in the client."""
    for transceiver in leg.pc.getTransceivers():
        connection = transceiver.sender.transport.transport._connection
        for protocol in connection._protocols:
            if getattr(protocol, "transport", None) is not None:
                protocol.transport.sendto = lambda *args, **kwargs: None
