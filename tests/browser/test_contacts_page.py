"""The Contacts page in real Chromium: search, open a contact, see its supervision, play its recording."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from bargein.mixer import TickStats
from bargein.mixer.tones import tone
from bargein.signaling.client import place_call, sign_in
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings

from .conftest import launch

pytestmark = pytest.mark.browser
TONE = {"customer": 500.0, "agent": 750.0, "supervisor": 1650.0}
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def speak(srv: BargeinServer):  # noqa: ANN201
    """Clock listener: every leg of every call speaks its role's tone (the recording gets real audio)."""
    def on_tick(stats: TickStats) -> None:
        legs, frames = [], []
        for call in srv.core.calls.values():
            for p in call.participants.values():
                leg = srv.legs.get(p.leg)
                if leg is not None:
                    legs.append(leg)
                    frames.append(tone(TONE[p.role.value], srv.engine.rate, srv.engine.n_samples, 0.3,
                                       start=(stats.index + 1) * srv.engine.n_samples))
        if legs:
            srv.engine.push_many(legs, np.stack(frames))
    return on_tick


async def recorded_call(srv: BargeinServer, base: str) -> str:
    async with aiohttp.ClientSession() as session:
        agent = await sign_in(base + "/ws", "agent1", session=session, state="available")
        customer = await sign_in(base + "/ws", "customer1", session=session)
        call_id = await place_call(customer, agent)
        sup = await sign_in(base + "/ws", "supervisor1", session=session)
        assert (await sup.request("INVITE", to=f"call:{call_id}"))["status"] == 200
        assert (await sup.request("INFO", call_id=call_id, action="mode", mode="barge"))["status"] == 200
        for _ in range(150):  # 3 s of audio
            await srv.clock.wait_tick()
        assert (await agent.request("BYE", call_id=call_id))["status"] == 200
        for c in (agent, customer, sup):
            await c.close()
    assert await asyncio.to_thread(srv.contacts.recorder.writer.sync)
    await srv.contacts.store.flush()
    return call_id


async def test_contacts_page_plays_a_recording(playwright: object, tmp_path: Path) -> None:
    srv = BargeinServer(Settings(port=0, data_dir=tmp_path))
    srv.clock.add_listener(speak(srv))
    async with serving(srv) as base:
        call_id = await recorded_call(srv, base)
        browser = await launch(playwright)
        try:
            page = await browser.new_page()  # type: ignore[attr-defined]
            await page.goto(f"{base}/?token=supervisor1")
            await page.click("#contacts-tab")
            row = page.locator("#contacts-body tr[data-id]")
            await row.first.wait_for(timeout=15000)
            assert await row.count() == 1
            assert "customer1" in await row.first.inner_text()
            await row.first.locator("button").focus()  # each contact opens from the keyboard too
            await page.keyboard.press("Enter")
            await page.locator("#contact-audio[src]").wait_for(state="attached", timeout=15000)
            assert call_id in await page.inner_text("#contact-title")
            sessions = await page.inner_text("#contact-sessions")
            assert "supervisor1" in sessions and "monitored" in sessions and "barged" in sessions
            await page.evaluate("window.bargein.contacts.playbackLevel()")  # route the player through an analyser
            await page.evaluate("document.getElementById('contact-audio').play()")
            peak, deadline = 0.0, time.monotonic() + 20
            while peak <= 0.01 and time.monotonic() < deadline:  # failure guard only
                peak = max(peak, float(await page.evaluate("window.bargein.contacts.playbackLevel()")))
                await asyncio.sleep(0.1)
            assert peak > 0.01, "the recording did not play"
            SHOTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(SHOTS / "contacts.png"), full_page=True)
            # an Agent has no Contacts page; a monitor-only supervisor sees contacts but cannot play them
            agent = await browser.new_page()  # type: ignore[attr-defined]
            await agent.goto(f"{base}/?token=agent1")
            await agent.locator("#agent-view").wait_for(state="visible", timeout=15000)
            assert await agent.locator("#contacts-tab").is_hidden()
            mon = await browser.new_page()  # type: ignore[attr-defined]
            await mon.goto(f"{base}/?token=monitoronly1")
            await mon.click("#contacts-tab")
            await mon.locator("#contacts-body tr[data-id]").first.click()
            await mon.locator("#contact-recording-note:has-text('recordings_download')").wait_for(timeout=15000)
            assert await mon.locator("#contact-audio").is_hidden()
        finally:
            await browser.close()  # type: ignore[attr-defined]
