"""Real headless Chromium (Debian's) driven by Playwright, against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from bargein.mixer.tones import tone
from bargein.signaling.media.pool import WorkerPool
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings
from bargein.signaling.webrtc import WebRTCGateway

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--no-sandbox",
    "--disable-gpu",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]

pytestmark = pytest.mark.browser


def write_tone_wav(path: Path, freq: float, seconds: float = 10.0, rate: int = 48000) -> Path:
    pcm = tone(freq, rate, int(seconds * rate), amplitude=0.3)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(pcm).tobytes())
    return path


@pytest.fixture(params=[0, 2], ids=["media-in-process", "media-workers-2"])
async def live_server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[BargeinServer, str]]:
    """The same server with its media in its own process, or in two media worker processes."""
    if request.param:
        srv = BargeinServer(Settings(port=0), media=WorkerPool(request.param))
    else:
        srv = BargeinServer(Settings(port=0), gateway=WebRTCGateway())
    async with serving(srv) as base:
        yield srv, base


class MediaView:
    """What the mixer holds, whether it runs in the server process or in media workers."""

    def __init__(self, srv: BargeinServer) -> None:
        self.srv = srv

    async def calls(self) -> int:
        if self.srv.media is None:
            return self.srv.engine.call_count
        return int((await self.srv.media.health())["mixer"]["calls"])

    async def calls_settle(self, want: int) -> int:
        """The mixer's call count once the workers have applied what signaling decided (failure guard only)."""
        for _ in range(200):
            if (got := await self.calls()) == want:
                return got
            await asyncio.sleep(0.05)
        return got

    async def frames_in(self, call_id: str) -> dict[str, int]:
        """Frames each of the call's legs received from its peer, by user."""
        call = self.srv.core.calls[call_id]
        legs = {p.leg: p.user for p in call.participants.values()}
        if self.srv.media is None:
            gw = self.srv.gateway
            return {legs[key]: gw.legs[leg].frames_in for key, leg in self.srv.legs.items()  # type: ignore[union-attr]
                    if key in legs and leg in gw.legs}  # type: ignore[union-attr]
        out: dict[str, int] = {}
        for s in await self.srv.media.stats(per_leg=True):
            out |= {legs[key]: n for key, n in (s.frames_in or {}).items() if key in legs}
        return out


@pytest.fixture
async def playwright() -> AsyncIterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/test installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        yield p


async def launch(playwright: object, wav: Path | None = None, mic_allowed: bool = True) -> object:
    """One Chromium per role; ``mic_allowed=False`` leaves out the flag that grants the microphone, so
    getUserMedia is refused as when a user blocks it."""
    flags = FLAGS if mic_allowed else [f for f in FLAGS if f != "--use-fake-ui-for-media-stream"]
    args = flags + ([f"--use-file-for-fake-audio-capture={wav}"] if wav else [])
    return await playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)  # type: ignore[attr-defined]
