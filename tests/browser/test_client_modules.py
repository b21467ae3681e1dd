"""The web client's ES modules, loaded in real Chromium against a real server: the signaling client's
request timeout and its pending requests failing when the socket closes, and the bounded activity log."""

from __future__ import annotations

import pytest
from bargein.signaling.server import BargeinServer

from .conftest import launch

pytestmark = pytest.mark.browser


async def open_page(playwright: object, base: str) -> tuple[object, object]:
    browser = await launch(playwright)
    page = await browser.new_page()  # type: ignore[attr-defined]
    await page.goto(base)
    await page.wait_for_selector("#signin")
    return browser, page


async def test_request_without_answer_times_out(live_server: tuple[BargeinServer, str], playwright: object) -> None:
    _, base = live_server
    browser, page = await open_page(playwright, base)
    try:
        # the server never answers an ACK: the request must settle on its own, as a local 408
        result = await page.evaluate("""async () => {
            const { SignalingClient } = await import("/static/signaling.js");
            const c = new SignalingClient({ timeoutMs: 300 });
            await c.connect();
            const reg = await c.request("REGISTER", { token: "agent1" });
            const ack = await c.request("ACK", { call_id: "call-404" });
            const after = await c.request("OPTIONS");
            return { reg: reg.status, ack, after: after.status, pending: c.pending.size };
        }""")
        assert result["reg"] == 200
        assert result["ack"]["status"] == 408 and result["ack"]["local"] is True
        assert "no answer from the server" in result["ack"]["reason"]
        assert result["after"] == 200 and result["pending"] == 0  # the connection is still usable
    finally:
        await browser.close()  # type: ignore[attr-defined]


async def test_pending_requests_fail_when_the_server_closes_the_socket(
        live_server: tuple[BargeinServer, str], playwright: object) -> None:
    _, base = live_server
    browser, page = await open_page(playwright, base)
    try:
        # signing in again as the same user makes the server close the older connection
        result = await page.evaluate("""async () => {
            const { SignalingClient } = await import("/static/signaling.js");
            const old = new SignalingClient({ timeoutMs: 20000 });  // without the fix: 408, not 503
            await old.connect();
            await old.request("REGISTER", { token: "agent2" });
            let closed = false;
            old.on("close", () => { closed = true; });
            const waiting = old.request("ACK", { call_id: "call-404" });
            const fresh = new SignalingClient();
            await fresh.connect();
            await fresh.request("REGISTER", { token: "agent2" });
            const r = await waiting;
            const late = await old.request("OPTIONS");
            return { r, closed, late, pending: old.pending.size };
        }""")
        assert result["r"]["status"] == 503 and "closed" in result["r"]["reason"]
        assert result["closed"] is True and result["pending"] == 0
        assert result["late"]["status"] == 503 and "not connected" in result["late"]["reason"]
    finally:
        await browser.close()  # type: ignore[attr-defined]


async def test_activity_log_is_bounded_newest_first(live_server: tuple[BargeinServer, str],
                                                    playwright: object) -> None:
    _, base = live_server
    browser, page = await open_page(playwright, base)
    try:
        result = await page.evaluate("""async () => {
            const { ActivityLog, ACTIVITY_LIMIT } = await import("/static/activity.js");
            const list = document.createElement("ul");
            const log = new ActivityLog(list);
            for (let i = 0; i < ACTIVITY_LIMIT + 50; i++) log.add(`entry ${i}`);
            return { n: list.children.length, limit: ACTIVITY_LIMIT,
                     first: list.firstElementChild.textContent, last: list.lastElementChild.textContent };
        }""")
        assert result["n"] == result["limit"]
        assert result["first"].endswith(f"entry {result['limit'] + 49}")
        assert result["last"].endswith("entry 50")
    finally:
        await browser.close()  # type: ignore[attr-defined]
