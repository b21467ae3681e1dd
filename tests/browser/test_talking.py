"""The call card's talking indicators in real Chromium: a real aiortc customer sends a tone and a real aiortc
agent sends silence; the supervisor's page shows the customer talking and the agent quiet, from the server's
``NOTIFY levels`` (the page itself hears one mixed track). Media in the signaling process and in workers."""

from __future__ import annotations

from pathlib import Path

import pytest
from bargein.signaling.client import place_call, sign_in
from bargein.signaling.server import BargeinServer
from bargein.signaling.webrtc_client import ClientLeg

from .conftest import launch

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


async def test_call_card_shows_who_is_talking(live_server: tuple[BargeinServer, str], playwright: object) -> None:
    srv, base = live_server
    url = base.replace("http://", "ws://") + "/ws"
    agent = await sign_in(url, "agent1", state="available", timeout=60)
    customer = await sign_in(url, "customer1", timeout=60)
    cust_leg, agent_leg = ClientLeg(500.0), ClientLeg(750.0, amplitude=0.0)
    browser = await launch(playwright)
    try:
        await place_call(customer, agent, customer_media=cust_leg, agent_media=agent_leg)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{base}/?token=supervisor1")
        await page.click(".monitor-btn:not([disabled])", timeout=30000)
        await page.wait_for_selector("#session-status.monitor")
        customer_ind = '#session-participants [data-talk="customer1"]'
        agent_ind = '#session-participants [data-talk="agent1"]'
        await page.wait_for_selector(f'{customer_ind}[data-talking="true"]', timeout=60000)
        assert await page.text_content(f"{customer_ind} .talk-word") == "talking"
        assert await page.get_attribute(agent_ind, "data-talking") == "false"
        assert await page.text_content(f"{agent_ind} .talk-word") == "quiet"  # a word, not a colour alone
        # the indicator is text inside the participant's row, so it is read with the name
        row = await page.inner_text('#session-participants li[data-user="customer1"]')
        assert "talking" in row and "Customer 1" in row  # the customer's name, as in the card's header
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / "talking-1400.png"))
        await page.click("#leave")
        await page.wait_for_selector("#session-live", state="hidden")
        assert not errors
    finally:
        await browser.close()  # type: ignore[attr-defined]
        for leg in (cust_leg, agent_leg):
            await leg.close()
        for c in (customer, agent):
            await c.close()
