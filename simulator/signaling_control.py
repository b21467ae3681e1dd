"""Call control through the real sans-IO signaling core, in-process (no sockets).

Every simulated person is a signed-in user with a connection to :class:`bargein.signaling.core.SignalingCore`
and speaks the wire protocol (REGISTER, PUBLISH, INVITE, INFO, REFER, BYE). Agents and invited parties
answer the server's INVITE at once. The core's leg actions are applied to the simulation's mixer, so
the simulator exercises the same permission checks, limits and ending rules as the server.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Literal

from bargein.mixer import MixerEngine
from bargein.signaling.core import AddLeg, CloseConnection, RemoveLeg, Send, SignalingCore, UpdateLeg
from bargein.signaling.directory import User, demo_directory
from bargein.signaling.messages import is_final
from bargein.signaling.settings import Settings

from .control import Ended, Mode, PlacedCall, Refused

_PROFILE = {"agent": "Agent", "customer": "Customer", "supervisor": "CallCenterManager"}


class SignalingControl:
    name = "signaling"
    reports_session_ends = True  # hang-ups return the session-ended notices supervisors received

    def __init__(self, engine: MixerEngine) -> None:
        self.engine = engine
        settings = Settings(limits=engine.limits, mixer_rate=engine.rate, max_requests_per_second=1e12,
                            max_connections=10**9)
        self.core = SignalingCore(settings, demo_directory())
        self.legs: dict[str, int] = {}  # core leg key -> mixer leg
        self.user_leg: dict[tuple[str, str], int] = {}  # (call id, user) -> mixer leg
        self.call_users: dict[str, list[str]] = {}
        self.conn: dict[str, str] = {}  # user -> connection
        self.cseq: dict[str, int] = {}
        self.responses: dict[tuple[str, int], dict[str, Any]] = {}
        self.ended: list[Ended] = []

    # ------------------------------------------------------------------ plumbing
    def _user(self, name: str, role: Literal["agent", "customer", "supervisor"]) -> str:
        conn = self.conn.get(name)
        if conn is not None:
            return conn
        if self.core.directory.user(name) is None:
            self.core.directory.add_user(User(name=name, token=f"tok-{name}", role=role, profile=_PROFILE[role]))
        conn = self.conn[name] = f"sim-{name}"
        self.core.connect(conn)
        r = self._request(name, "REGISTER", token=f"tok-{name}")
        assert r["status"] == 200, r
        return conn

    def _request(self, user: str, method: str, **fields: Any) -> dict[str, Any]:
        conn = self.conn[user]
        cseq = self.cseq[user] = self.cseq.get(user, 0) + 1
        self._run(self.core.handle(conn, {"method": method, "cseq": cseq, **fields}))
        return self.responses.pop((conn, cseq), {"status": 500, "reason": "no response"})

    def _run(self, actions: list) -> None:
        todo = deque(actions)
        while todo:
            a = todo.popleft()
            if isinstance(a, Send):
                msg = a.message
                if msg.get("type") == "response":
                    if is_final(msg["status"]):
                        self.responses[(a.conn, msg["cseq"])] = msg
                elif msg["method"] == "INVITE":  # an agent or invited party answers at once
                    todo.extend(self.core.handle(a.conn, {"type": "response", "method": "INVITE", "cseq": msg["cseq"],
                                                          "status": 200, "call_id": msg["call_id"]}))
                elif msg["method"] == "NOTIFY" and msg.get("event") == "session-ended":
                    self.ended.append(Ended(a.conn.removeprefix("sim-"), msg["reason"]))
            elif isinstance(a, AddLeg):
                leg = self.engine.add_leg(a.call_id, a.routing)
                self.legs[a.leg] = leg
                self.user_leg[(a.call_id, a.user)] = leg
                self.call_users.setdefault(a.call_id, []).append(a.user)
            elif isinstance(a, UpdateLeg):
                self.engine.set_routing(self.legs[a.leg], a.routing)
            elif isinstance(a, RemoveLeg):
                self.engine.remove_leg(self.legs.pop(a.leg))
            elif isinstance(a, CloseConnection):
                pass

    def _refused(self, r: dict[str, Any]) -> Refused:
        return Refused(r["status"], r.get("reason", ""))

    # ------------------------------------------------------------------ CallControl
    def setup(self, agents: list[str], supervisors: list[str]) -> None:
        for a in agents:
            self._user(a, "agent")
            assert self._request(a, "PUBLISH", state="available")["status"] == 200
        for s in supervisors:
            self._user(s, "supervisor")

    def place_call(self, customer: str) -> PlacedCall | Refused:
        self._user(customer, "customer")
        r = self._request(customer, "INVITE", to=f"queue:{self.core.settings.default_queue}")
        if r["status"] != 200:
            self._drop_user(customer)
            return self._refused(r)
        call_id, agent = r["call_id"], r["agent"]
        return PlacedCall(call_id, agent, self.user_leg[(call_id, customer)], self.user_leg[(call_id, agent)])

    def hangup(self, call_id: str, by: Literal["agent", "customer"]) -> list[Ended]:
        call = self.core.calls[call_id]
        user = call.agent if by == "agent" else call.customer
        assert user is not None
        self.ended = []
        customer = call.customer
        self._request(user, "BYE", call_id=call_id)
        self._forget(call_id)
        self._drop_user(customer)
        return self.ended

    def add_party(self, call_id: str, agent: str, party: str) -> int | Refused:
        self._user(party, "customer")
        r = self._request(agent, "REFER", call_id=call_id, target=party)
        if r["status"] != 202:
            self._drop_user(party)
            return self._refused(r)
        leg = self.user_leg.get((call_id, party))
        return leg if leg is not None else Refused(480, f"{party} did not join")

    def drop_party(self, call_id: str, party: str) -> None:
        self._request(party, "BYE", call_id=call_id)
        self.user_leg.pop((call_id, party), None)
        self._drop_user(party)

    def monitor(self, supervisor: str, call_id: str) -> int | Refused:
        r = self._request(supervisor, "INVITE", to=f"call:{call_id}")
        if r["status"] != 200:
            return self._refused(r)
        return self.user_leg[(call_id, supervisor)]

    def set_mode(self, supervisor: str, call_id: str, mode: Mode) -> Refused | None:
        r = self._request(supervisor, "INFO", call_id=call_id, action="mode", mode=mode)
        return None if r["status"] == 200 else self._refused(r)

    def leave(self, supervisor: str, call_id: str) -> None:
        self._request(supervisor, "BYE", call_id=call_id)
        self.user_leg.pop((call_id, supervisor), None)

    def set_muted(self, call_id: str, who: str, muted: bool, by: str) -> Refused | None:
        target = {} if who == by else {"target": who}
        r = self._request(by, "INFO", call_id=call_id, action="mute", value=muted, **target)
        return None if r["status"] == 200 else self._refused(r)

    def set_held(self, call_id: str, who: str, held: bool, by: str) -> Refused | None:
        r = self._request(by, "INFO", call_id=call_id, action="hold", target=who, value=held)
        return None if r["status"] == 200 else self._refused(r)

    def close(self) -> None:
        for user in list(self.conn):
            self._drop_user(user)

    def _forget(self, call_id: str) -> None:
        for user in self.call_users.pop(call_id, []):
            self.user_leg.pop((call_id, user), None)

    def _drop_user(self, name: str) -> None:
        conn = self.conn.pop(name, None)
        if conn is not None:
            self._run(self.core.disconnect(conn))
            self.cseq.pop(name, None)
