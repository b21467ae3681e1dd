"""Three real Chromium instances (customer, agent, supervisor), each sending its own tone from a fake
microphone and measuring what it hears with a WebAudio AnalyserNode on the received track."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from bargein.signaling.server import BargeinServer

from .conftest import MediaView, launch, write_tone_wav

pytestmark = pytest.mark.browser

TONE = {"customer": 500, "agent": 750, "supervisor": 1650}
HEARD_DB = -45.0  # the analyser reads about -28 dB for a tone that is heard
SILENT_DB = -75.0  # and below -95 dB for one that is not
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


async def level(page: object, hz: int) -> float:
    return float(await page.evaluate(f"window.bargein.levelAt({hz})"))  # type: ignore[attr-defined]


async def expect_hearing(pages: dict[str, object], expected: dict[str, set[str]], timeout: float = 45) -> None:
    """Wait (failure guard only) until every listener hears exactly ``expected``, three readings in a row."""
    deadline = time.monotonic() + timeout
    streak, last = 0, {}
    while True:
        ok = True
        last = {}
        for listener, page in pages.items():
            for speaker, hz in TONE.items():
                if speaker == listener:
                    continue
                db = await level(page, hz)
                last[(listener, speaker)] = round(db, 1)
                want = speaker in expected[listener]
                ok &= db > HEARD_DB if want else db < SILENT_DB
        streak = streak + 1 if ok else 0
        if streak >= 3:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"hearing never matched {expected}; levels (dB) {last}")
        await asyncio.sleep(0.2)


async def test_monitor_barge_coach_in_real_chromium(live_server: tuple[BargeinServer, str], playwright: object,
                                                   tmp_path: Path) -> None:
    srv, base = live_server
    browsers, pages = [], {}
    try:
        for role, token in (("agent", "agent1"), ("customer", "customer1"), ("supervisor", "supervisor1")):
            browser = await launch(playwright, write_tone_wav(tmp_path / f"{role}.wav", TONE[role]))
            browsers.append(browser)
            page = await browser.new_page(viewport={"width": 1280, "height": 800})  # type: ignore[attr-defined]
            await page.goto(f"{base}/?token={token}")
            await page.wait_for_selector(f"#{role}-view:not([hidden])")
            pages[role] = page
        agent, customer, sup = pages["agent"], pages["customer"], pages["supervisor"]
        await agent.click("#availability [data-state=available]")
        await agent.wait_for_selector("#agent-state-badge.available")
        await customer.click("#customer-call")
        await agent.click("#accept", timeout=15000)
        await customer.wait_for_selector("#customer-badge.connected", timeout=15000)
        await sup.click(".monitor-btn:not([disabled])", timeout=15000)
        await sup.wait_for_selector("#session-status.monitor")
        assert await sup.text_content("#session-status") == "Monitoring"

        silent_sup = {"customer": {"agent"}, "agent": {"customer"}, "supervisor": {"customer", "agent"}}
        await expect_hearing(pages, silent_sup)
        await agent.wait_for_selector("#supervised:not([hidden])")
        assert "supervisor1 is listening" in await agent.text_content("#supervised")
        assert await sup.evaluate("window.bargein.media.mic === null")  # nobody hears a monitor: no microphone

        await sup.click("#mode [data-mode=barge]")
        await sup.wait_for_selector("#session-status.barge")
        assert await sup.text_content("#session-status") == "Barging"
        await expect_hearing(pages, {"customer": {"agent", "supervisor"}, "agent": {"customer", "supervisor"},
                                     "supervisor": {"customer", "agent"}})
        assert "barged in" in await agent.text_content("#supervised")
        # while barging the supervisor may mute a participant: nobody hears the customer, then everybody again
        await sup.click("#session-participants [data-act=mute][data-user=customer1]")
        await sup.wait_for_selector("#session-participants [data-act=mute][data-user=customer1][data-value=false]")
        await expect_hearing(pages, {"customer": {"agent", "supervisor"}, "agent": {"supervisor"},
                                     "supervisor": {"agent"}})
        SHOTS.mkdir(parents=True, exist_ok=True)
        await sup.screenshot(path=str(SHOTS / "supervisor-barging.png"), full_page=True)
        await customer.wait_for_selector("#customer-mute.on")  # the customer sees it, never who did it
        assert "muted for you" in await customer.text_content("#banner")
        assert "supervisor" not in (await customer.inner_text("body")).lower()
        await sup.click("#session-participants [data-act=mute][data-user=customer1]")
        await customer.wait_for_selector("#customer-mute:not(.on)")
        await expect_hearing(pages, {"customer": {"agent", "supervisor"}, "agent": {"customer", "supervisor"},
                                     "supervisor": {"customer", "agent"}})

        await sup.click("#mode [data-mode=coach]")
        await sup.wait_for_selector("#session-status.coach")
        assert await sup.is_disabled("#session-participants [data-act=mute][data-user=customer1]")
        assert await sup.text_content("#session-status") == "Coaching"
        await expect_hearing(pages, {"customer": {"agent"}, "agent": {"customer", "supervisor"},
                                     "supervisor": {"customer", "agent"}})

        await sup.click("#mode [data-mode=monitor]")
        await sup.wait_for_selector("#session-status.monitor")
        await expect_hearing(pages, silent_sup)

        SHOTS.mkdir(parents=True, exist_ok=True)
        for role, page in pages.items():
            await page.screenshot(path=str(SHOTS / f"{role}.png"), full_page=True)

        await agent.click("#agent-hangup")
        await sup.wait_for_selector("#banner:not([hidden])", timeout=15000)
        text = await sup.text_content("#banner")
        assert "Monitoring ended" in text and "agent ended the call" in text
        assert await sup.is_hidden("#session-live")
        await customer.wait_for_selector("#customer-badge.idle", timeout=15000)
        await sup.screenshot(path=str(SHOTS / "supervisor-ended.png"), full_page=True)
        assert await MediaView(srv).calls_settle(0) == 0
    finally:
        for b in browsers:
            await b.close()  # type: ignore[attr-defined]


async def test_refused_barge_is_explained_and_keeps_supervisor_silent(
        live_server: tuple[BargeinServer, str], playwright: object, tmp_path: Path) -> None:
    srv, base = live_server
    browsers, pages = [], {}
    try:
        for role, token in (("agent", "agent2"), ("customer", "customer2"), ("supervisor", "monitoronly1")):
            browser = await launch(playwright, write_tone_wav(tmp_path / f"{role}.wav", TONE[role]))
            browsers.append(browser)
            page = await browser.new_page()  # type: ignore[attr-defined]
            await page.goto(f"{base}/?token={token}")
            await page.wait_for_selector(f"#{role}-view:not([hidden])")
            pages[role] = page
        agent, customer, sup = pages["agent"], pages["customer"], pages["supervisor"]
        await agent.click("#availability [data-state=available]")
        await agent.wait_for_selector("#agent-state-badge.available")
        await customer.click("#customer-call")
        await agent.click("#accept", timeout=15000)
        await customer.wait_for_selector("#customer-badge.connected", timeout=15000)
        await sup.click(".monitor-btn:not([disabled])", timeout=15000)
        await sup.wait_for_selector("#session-status.monitor")
        assert await sup.is_disabled("#mode [data-mode=barge]")  # and says why, in plain words
        assert "listen only" in await sup.text_content("#mode-reason")
        assert await sup.text_content("#session-status") == "Monitoring"
        await expect_hearing(pages, {"customer": {"agent"}, "agent": {"customer"},
                                     "supervisor": {"customer", "agent"}})
        # a second supervisor whose browser blocks the microphone still monitors (it sends silence)
        nomic = await launch(playwright, mic_allowed=False)
        browsers.append(nomic)
        sup2 = await nomic.new_page()  # type: ignore[attr-defined]
        await sup2.goto(f"{base}/?token=supervisor1")
        await sup2.click(".monitor-btn:not([disabled])", timeout=15000)
        await sup2.wait_for_selector("#session-status.monitor")
        await sup2.click("#mode [data-mode=barge]")  # no microphone: barging is silent, and the page says so
        await sup2.wait_for_selector("#session-status.barge")
        assert "No microphone" in await sup2.text_content("#banner")
        await expect_hearing({**pages, "supervisor2": sup2},
                             {"customer": {"agent"}, "agent": {"customer"}, "supervisor": {"customer", "agent"},
                              "supervisor2": {"customer", "agent"}})
        frames_in = await MediaView(srv).frames_in(next(iter(srv.core.calls)))
        assert len(frames_in) == 4
        assert frames_in["supervisor1"] > 0  # silence keeps it alive
        await sup.click("#leave")  # leaving never ends the call
        await sup.wait_for_selector("#session-live", state="hidden")
        assert await MediaView(srv).calls_settle(1) == 1 and len(srv.core.calls) == 1
    finally:
        for b in browsers:
            await b.close()  # type: ignore[attr-defined]


async def test_blocked_microphone_is_explained(live_server: tuple[BargeinServer, str], playwright: object) -> None:
    srv, base = live_server
    browser = await launch(playwright, mic_allowed=False)
    try:
        page = await browser.new_page()  # type: ignore[attr-defined]
        await page.goto(f"{base}/?token=customer1")
        await page.wait_for_selector("#customer-view:not([hidden])")
        await page.click("#customer-call")
        await page.wait_for_selector("#customer-call:not([disabled])")  # the customer can try again
        assert "Allow the microphone" in await page.text_content("#customer-status")
        assert "Microphone permission" in await page.text_content("#banner")
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / "customer-no-mic.png"), full_page=True)
        assert await MediaView(srv).calls() == 0 and not srv.core.calls
    finally:
        await browser.close()  # type: ignore[attr-defined]
