"""Chat in the web client (real Chromium, real server on 127.0.0.1): a customer starts a chat and types, the
agent accepts and answers, a supervisor sees the chat count, opens the chat read-only, then barges."""

from __future__ import annotations

import pytest
from bargein.signaling.server import BargeinServer, serving
from bargein.signaling.settings import Settings

from .conftest import launch

pytestmark = pytest.mark.browser


async def signed_in(browser: object, base: str, token: str) -> object:
    page = await browser.new_page()  # type: ignore[attr-defined]
    await page.goto(f"{base}/?token={token}")
    await page.wait_for_selector("#chat-panel:not([hidden])")
    return page


async def test_chat_customer_agent_and_barging_supervisor(playwright: object) -> None:
    srv = BargeinServer(Settings(port=0))
    async with serving(srv) as base:
        browser = await launch(playwright)
        try:
            agent = await signed_in(browser, base, "agent1")
            await agent.click("#availability button[data-state=available]")
            await agent.wait_for_selector("#agent-state-badge.available")
            customer = await signed_in(browser, base, "customer1")
            await customer.click("#chat-start")
            await agent.click("button[data-act=accept]")
            await customer.wait_for_selector("#chat-list form input")
            await customer.fill("#chat-list form input", "where is my parcel?")
            await customer.press("#chat-list form input", "Enter")
            await agent.wait_for_selector("text=where is my parcel?")
            await agent.fill("#chat-list form input", "checking now")
            await agent.press("#chat-list form input", "Enter")
            await customer.wait_for_selector("text=checking now")

            sup = await signed_in(browser, base, "supervisor1")
            row = sup.locator("#chat-agents-body tr", has_text="Agent 1")
            await row.locator("text=1").first.wait_for()
            await row.locator("button[data-act=open]").click()
            await sup.wait_for_selector("text=where is my parcel?")  # the transcript so far
            assert await sup.locator("#chat-list form").count() == 0  # read-only
            await sup.click("button[data-act=barge]")
            await sup.fill("#chat-list form input", "a voucher is on its way")
            await sup.press("#chat-list form input", "Enter")
            await customer.wait_for_selector("text=a voucher is on its way")
            await agent.wait_for_selector("text=a voucher is on its way")
            shown = await customer.inner_text("#chat-list")
            assert "Supervisor: a voucher is on its way" in shown
            assert "Supervisor 1" not in shown and "supervisor1" not in shown
        finally:
            await browser.close()  # type: ignore[attr-defined]
