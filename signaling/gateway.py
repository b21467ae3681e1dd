"""The media hook: how the server hands a leg's SDP offer to a media transport (WebRTC).

The sans-IO core marks a frame that answers an SDP offer (``Send.media_leg``/``media_offer``). The
server's adapter then calls :meth:`MediaGateway.open_leg` with the *mixer* leg id and the offer, puts
the returned answer in the frame's ``sdp`` field and sends it. When the core removes a leg the
adapter calls :meth:`close_leg`. A gateway that sees a peer vanish (connection closed or failed)
calls the ``on_leg_lost`` callback given to :meth:`attach`; the server frees the leg like a BYE.

The gateway moves audio itself: inbound frames go to ``engine.push(leg, frame)`` (mono int16,
20 ms at ``engine.rate``); outbound frames are ``engine.output(leg)`` after each tick of ``clock``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from bargein.mixer import MixerEngine, RealtimeClock


class MediaError(Exception):
    """The offer could not be answered (bad SDP, no common codec); the reason goes to the client (488)."""


class MediaGateway(ABC):
    engine: MixerEngine
    clock: RealtimeClock
    on_leg_lost: Callable[[int], None]

    def attach(self, engine: MixerEngine, clock: RealtimeClock, on_leg_lost: Callable[[int], None]) -> None:
        """Called once by the server before any leg is opened."""
        self.engine, self.clock, self.on_leg_lost = engine, clock, on_leg_lost

    @abstractmethod
    async def open_leg(self, leg: int, call_id: str, offer_sdp: str) -> str:
        """Start media for mixer leg ``leg``; return the SDP answer. Raise MediaError to refuse."""

    @abstractmethod
    async def close_leg(self, leg: int) -> None:
        """Stop the leg's media (idempotent)."""

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Server shutdown."""
