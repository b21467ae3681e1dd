"""Demo chats inside a real server: they show in the agents view and a supervisor can open and barge into one."""

import asyncio

from bargein.signaling.client import sign_in
from bargein.signaling.server import serving
from bargein.signaling.settings import Settings

from bargein.app import build_server


async def test_demo_chats_show_in_agents_view_and_can_be_watched_and_barged() -> None:
    srv = build_server(Settings(port=0, mixer_rate=16000), demo_calls=1, webrtc=False)  # 3 demo chats beside
    async with serving(srv) as base:
        sup = await sign_in(base + "/ws", "supervisor1")
        chats: list = []
        for _ in range(200):
            rows = [a for a in srv.core.agents_view() if a["agent"].startswith("demo-chat-agent")]
            chats = [c for a in rows for c in a["chats"] if c["state"] == "active" and c["messages"] > 0]
            if sum(a["chat_count"] for a in rows) == 3 and chats:
                break
            await asyncio.sleep(0.05)
        assert chats, srv.core.agents_view()
        cid = chats[0]["contact_id"]
        r = await sup.request("INVITE", to=f"chat:{cid}")
        assert r["status"] == 200 and r["transcript"], r
        assert (await sup.request("INFO", call_id=cid, action="mode", mode="barge"))["status"] == 200
        assert (await sup.request("MESSAGE", contact_id=cid, text="hello from the team"))["status"] == 200
        await sup.close()
