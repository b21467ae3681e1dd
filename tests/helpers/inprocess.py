"""An in-process driver for the sans-IO core: clients without sockets and a fake clock (tests only)."""

from __future__ import annotations

from typing import Any

from bargein.signaling.core import (
    AddLeg,
    CloseConnection,
    MeterCall,
    RemoveLeg,
    Send,
    SignalingCore,
    UpdateLeg,
)
from bargein.signaling.messages import is_final
from bargein.signaling.settings import Settings


def offer(tag: str) -> str:
    """A minimal SDP offer with one Opus audio section (the core checks offers; no media flows in-process)."""
    return (f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns={tag}\r\nt=0 0\r\n"
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n")

class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


class Harness:
    """Routes the core's actions: frames to per-connection inboxes, leg actions to a list."""

    def __init__(self, **settings: Any) -> None:
        self.clock = FakeClock()
        self.core = SignalingCore(Settings(**settings), clock=self.clock)
        self.inbox: dict[str, list[dict]] = {}
        self.legs: dict[str, dict] = {}  # leg -> {"call_id", "routing", "user"}
        self.closed: list[str] = []
        self.metered: dict[str, bool] = {}  # call -> whether the core asked to measure its levels
        self.n = 0

    def apply(self, actions: list) -> list:
        """Apply ``actions`` and what follows from them (an answered SDP offer); returns them all."""
        actions = list(actions)
        for a in actions:  # grows while iterating: follow-ups are applied in order after the batch
            if isinstance(a, Send):
                msg = dict(a.message)
                if a.media_leg is not None:
                    msg["sdp"] = f"answer-for-{a.media_leg}"
                self.inbox.setdefault(a.conn, []).append(msg)
                if a.media_leg is not None:
                    actions += self.core.media_answered(a.media_leg)
            elif isinstance(a, AddLeg):
                assert a.leg not in self.legs
                self.legs[a.leg] = {"call_id": a.call_id, "routing": a.routing, "user": a.user}
            elif isinstance(a, UpdateLeg):
                self.legs[a.leg]["routing"] = a.routing
            elif isinstance(a, RemoveLeg):
                del self.legs[a.leg]
            elif isinstance(a, MeterCall):
                self.metered[a.call_id] = a.on
            elif isinstance(a, CloseConnection):
                self.closed.append(a.conn)
        return actions

    def connection(self, remote: str | None = None) -> Client:
        """A transport that has not signed in yet (from ``remote``, when the test cares about addresses)."""
        self.n += 1
        c = Client(self, f"conn{self.n}")
        self.apply(self.core.connect(c.conn, remote=remote))
        return c

    def client(self, token: str, state: str | None = None, remote: str | None = None) -> Client:
        c = self.connection(remote)
        r = c.request("REGISTER", token=token)
        assert r["status"] == 200, r
        if state:
            assert c.request("PUBLISH", state=state)["status"] == 200
        return c

    def legs_of(self, call_id: str) -> dict[str, Any]:
        return {v["user"]: v["routing"] for v in self.legs.values() if v["call_id"] == call_id}


class Client:
    def __init__(self, h: Harness, conn: str) -> None:
        self.h, self.conn, self.cseq = h, conn, 0

    @property
    def inbox(self) -> list[dict]:
        return self.h.inbox.setdefault(self.conn, [])

    def send(self, msg: Any) -> None:
        self.h.apply(self.h.core.handle(self.conn, msg))

    def request(self, method: str, **fields: Any) -> dict:
        """Send a request; return its final (>= 200) response, or the last provisional one."""
        self.cseq += 1
        start = len(self.inbox)
        self.send({"method": method, "cseq": self.cseq, **fields})
        mine = [m for m in self.inbox[start:] if m.get("type") == "response" and m.get("cseq") == self.cseq]
        assert mine, f"no response to {method}: {self.inbox[start:]}"
        final = [m for m in mine if is_final(m["status"])]
        return final[-1] if final else mine[-1]

    def pop(self, method: str | None = None, event: str | None = None) -> dict | None:
        for i, m in enumerate(self.inbox):
            if m.get("type") == "request" and (method is None or m["method"] == method) and \
                    (event is None or m.get("event") == event):
                return self.inbox.pop(i)
        return None

    def last(self, event: str) -> dict | None:
        found = [m for m in self.inbox if m.get("event") == event]
        return found[-1] if found else None

    def answer(self, sdp: str | None = "agent-offer", status: int = 200) -> dict:
        inv = self.pop("INVITE")
        assert inv is not None, f"no INVITE for {self.conn}: {self.inbox}"
        self.send({"type": "response", "method": "INVITE", "cseq": inv["cseq"], "status": status,
                   "call_id": inv["call_id"], **({"sdp": sdp} if sdp else {})})
        return inv

    def disconnect(self) -> None:
        self.h.apply(self.h.core.disconnect(self.conn))


def start_call(h: Harness, customer: str = "customer1", agent: str = "agent1") -> tuple[Client, Client, str]:
    a = h.client(agent, state="available")
    c = h.client(customer)
    r = c.request("INVITE", to="queue:support", sdp=offer("customer"))
    assert r["status"] == 180, r
    call_id = r["call_id"]
    a.answer()
    ok = [m for m in c.inbox if m.get("status") == 200 and m.get("method") == "INVITE"]
    assert ok, c.inbox
    return c, a, call_id
