"""Screenshots of every page of the web client at a phone's and a desktop's size, against the live demo.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--demo-calls 8] [--raw DIR]

Starts the server as ``bargein serve --demo-calls N`` wires it (in this process, on 127.0.0.1, a free port),
drives Debian's Chromium with Playwright (fake microphone) and saves, for 390x844 and 1400x900:
sign-in, the supervisor's console idle and monitoring (the call card with who is talking), an agent on
a call being barged, a customer on a call, the Contacts page with one contact open, and a chat a
supervisor reads. PNGs are reduced to a 256-colour palette with Pillow when it is installed (``--raw``
keeps the full-colour originals too).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bargein.signaling.client import sign_in
from bargein.signaling.server import serving
from bargein.signaling.settings import Settings

from bargein.app import build_server

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox", "--disable-gpu",
         "--autoplay-policy=no-user-gesture-required", "--disable-background-networking",
         "--disable-component-update"]
SIZES = {"390": {"width": 390, "height": 844}, "1400": {"width": 1400, "height": 900}}


def shrink(src: Path, dst: Path) -> None:
    """A palette PNG (UI screenshots have few colours): a fraction of the size, same look."""
    try:
        from PIL import Image
    except ImportError:
        shutil.copyfile(src, dst)
        return
    with Image.open(src) as img:
        img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            dst, optimize=True)


async def take(page: Any, out: Path, name: str, *, full: bool = False, element: str | None = None) -> Path:
    path = out / f"{name}.png"
    if element:
        await page.locator(element).first.screenshot(path=str(path))
    else:
        await page.screenshot(path=str(path), full_page=full)
    print(f"  {path.name}")
    return path


async def page_for(browser: Any, base: str, token: str | None, size: dict[str, int]) -> Any:
    page = await browser.new_page(viewport=size)
    page.on("pageerror", lambda e: print(f"    page error: {e}"))
    await page.goto(f"{base}/?token={token}" if token else base)
    await page.wait_for_selector("#signin" if token is None else "#app:not([hidden])")
    return page


async def shots(base: str, raw: Path) -> None:
    from playwright.async_api import async_playwright

    ws = base.replace("http://", "ws://") + "/ws"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            for w, size in SIZES.items():
                phone = w == "390"
                print(f"{w} px:")
                page = await page_for(browser, base, None, size)
                await take(page, raw, f"signin-{w}", full=True)
                await page.close()

                sup = await page_for(browser, base, "supervisor1", size)
                await sup.wait_for_selector(".monitor-btn:not([disabled])", timeout=60000)
                await sup.wait_for_timeout(1500)  # durations tick, the live chats count arrives
                await take(sup, raw, f"supervisor-idle-{w}")
                await sup.click(".monitor-btn:not([disabled])")
                await sup.wait_for_selector("#session-status.monitor")
                await sup.wait_for_selector('#session-participants [data-talking="true"]', timeout=30000)
                if phone:
                    await sup.locator("#session").scroll_into_view_if_needed()
                await take(sup, raw, f"supervisor-monitoring-{w}")

                # a chat the supervisor reads (demo chats run beside the demo calls)
                await sup.click("#leave")
                opener = sup.locator("button[data-open-chat]").first
                await opener.wait_for(timeout=60000)
                await opener.click()
                await sup.wait_for_selector("#chat-list section.chat")
                await sup.wait_for_timeout(500)
                await take(sup, raw, f"chat-supervisor-{w}", element="#chat-panel")
                await sup.close()

                # an agent on a call, a supervisor barged in (agent1 in the browser, the others protocol clients)
                agent = await page_for(browser, base, "agent1", size)
                await agent.click("#availability [data-state=available]")
                await agent.wait_for_selector("#agent-state-badge.available")
                customer = await sign_in(ws, "customer1")
                calling = await customer.send("INVITE", to="queue:support")
                await agent.click("#accept", timeout=30000)
                call_id = (await calling.final(30))["call_id"]
                barger = await sign_in(ws, "supervisor2")
                assert (await barger.request("INVITE", to=f"call:{call_id}", mode="barge"))["status"] == 200
                await agent.wait_for_selector("#supervised.barge")
                await agent.wait_for_timeout(1200)
                await take(agent, raw, f"agent-barged-{w}", full=not phone)
                await barger.close()
                await agent.click("#agent-hangup")
                await customer.close()
                await agent.close()

                # a customer on a call (customer2 in the browser, agent2 a protocol client)
                agent2 = await sign_in(ws, "agent2", state="available")
                cust = await page_for(browser, base, "customer2", size)
                await take(cust, raw, f"customer-idle-{w}")
                await cust.click("#customer-call")
                await agent2.respond(await agent2.expect("INVITE", timeout=30), 200)
                await cust.wait_for_selector("#customer-badge.connected", timeout=30000)
                await cust.wait_for_timeout(2200)
                await take(cust, raw, f"customer-call-{w}")
                await cust.click("#customer-hangup")
                await agent2.close()
                await cust.close()

                # the Contacts page, one contact open
                con = await page_for(browser, base, "supervisor1", size)
                await con.click("#contacts-tab")
                await con.wait_for_selector("#contacts-body tr[data-id]", timeout=30000)
                await take(con, raw, f"contacts-{w}")
                await con.locator("#contacts-body tr[data-id]").first.click()
                await con.wait_for_selector("#contact:not([hidden])")
                await con.locator("#contact").scroll_into_view_if_needed()
                await take(con, raw, f"contact-open-{w}")
                await con.close()
        finally:
            await browser.close()


async def main(out: Path, demo_calls: int, raw: Path | None) -> None:
    data = Path(tempfile.mkdtemp(prefix="bargein-shots-"))
    settings = Settings(port=0, data_dir=str(data))
    srv = build_server(settings, demo_calls=demo_calls)
    tmp = raw or Path(tempfile.mkdtemp(prefix="bargein-raw-"))
    tmp.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    try:
        async with serving(srv) as base:
            await asyncio.sleep(8)  # the demo's first calls start staggered; a few end and become contacts
            await shots(base, tmp)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(data)
    total = 0
    for png in sorted(tmp.glob("*.png")):
        shrink(png, out / png.name)
        total += (out / png.name).stat().st_size
    print(f"{len(list(tmp.glob('*.png')))} screenshots in {out} ({total // 1024} KB)")
    if raw is None:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    ap.add_argument("--demo-calls", type=int, default=8)
    ap.add_argument("--raw", type=Path, default=None, help="also keep the full-colour PNGs here")
    args = ap.parse_args()
    asyncio.run(main(args.out, args.demo_calls, args.raw))
