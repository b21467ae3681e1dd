"""Real headless Chromium (Debian's) driven by Playwright, against a real server on 127.0.0.1."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from bargein.mixer.tones import tone
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


@pytest.fixture
async def live_server() -> AsyncIterator[tuple[BargeinServer, str]]:
    srv = BargeinServer(Settings(port=0), gateway=WebRTCGateway())
    async with serving(srv) as base:
        yield srv, base


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
