"""Chat contacts in the simulation, driven through the real sans-IO signaling core (no sockets).

Customers start chats at Poisson arrivals; the core offers each to an agent (who accepts at once); both
sides write at ``messages_per_min``; supervisors open some chats, some of them barge and write; the agent
or the customer ends each chat after an exponential duration. Every frame the core sends is checked:

- a monitoring supervisor receives every message written after it joined (and the transcript before);
- no frame to a customer names a supervisor or is caused by a supervisor joining, leaving or changing mode;
- a barged message reaches both the agent and the customer.
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from bargein.signaling.core import Send, SignalingCore
from bargein.signaling.directory import User, demo_directory
from bargein.signaling.settings import Settings

from .scenario import Chats


@dataclass
class ChatReport:
    chats_started: int = 0
    chats_refused: int = 0
    chats_completed: int = 0
    messages: int = 0
    supervisor_joins: int = 0
    barged_messages: int = 0
    violations: int = 0
    violation_examples: list[str] = field(default_factory=list)

    def violate(self, what: str) -> None:
        self.violations += 1
        if len(self.violation_examples) < 20:
            self.violation_examples.append(what)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Live:
    contact_id: str
    customer: str
    agent: str
    supervisor: str | None = None
    written: list[int] = field(default_factory=list)  # seqs written so far
    sup_from: int = 0  # the first seq the supervisor must receive live
    sup_own: set[int] = field(default_factory=set)  # its own messages: answered, not echoed


class ChatSimulation:
    def __init__(self, chats: Chats, duration_s: float, seed: int = 1) -> None:
        self.cfg, self.duration_s = chats, duration_s
        self.rng = random.Random(seed)
        self.t = 0.0
        directory = demo_directory()
        self.core = SignalingCore(Settings(max_chats_per_agent=chats.max_chats_per_agent,
                                           max_requests_per_second=1e12, max_connections=10**9),
                                  directory, clock=lambda: self.t)
        self.report = ChatReport()
        self.conn: dict[str, str] = {}
        self.cseq: dict[str, int] = {}
        self.received: dict[str, list[dict[str, Any]]] = {}  # user -> frames received
        self.responses: dict[tuple[str, int], dict[str, Any]] = {}
        self.live: dict[str, _Live] = {}
        self.free_sups: list[str] = []
        self._events: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._n = itertools.count()
        self._customers = itertools.count(1)
        for i in range(chats.agents):
            self._sign_in(f"chat-agent{i + 1}", "agent", "Agent")
            self._request(f"chat-agent{i + 1}", "PUBLISH", state="available")
        for i in range(chats.supervisors):
            name = f"chat-sup{i + 1}"
            self._sign_in(name, "supervisor", "CallCenterManager", display=f"Chat Supervisor {i + 1}")
            self.free_sups.append(name)

    # ------------------------------------------------------------------ plumbing
    def _sign_in(self, name: str, role: Any, profile: str, display: str | None = None) -> None:
        self.core.directory.add_user(User(name=name, token=f"tok-{name}", role=role, profile=profile,
                                          display_name=display or name))
        conn = self.conn[name] = f"chat-{name}"
        self.core.connect(conn, now=self.t)
        r = self._request(name, "REGISTER", token=f"tok-{name}")
        assert r["status"] == 200, r

    def _request(self, user: str, method: str, **fields: Any) -> dict[str, Any]:
        conn = self.conn[user]
        cseq = self.cseq[user] = self.cseq.get(user, 0) + 1
        self._apply(self.core.handle(conn, {"method": method, "cseq": cseq, **fields}, now=self.t))
        return self.responses.pop((conn, cseq), {"status": 500, "reason": "no response"})

    def _apply(self, actions: list[Any]) -> None:
        todo = list(actions)
        while todo:
            a = todo.pop(0)
            if not isinstance(a, Send):
                continue
            msg, user = a.message, a.conn.removeprefix("chat-")
            if msg.get("type") == "response":
                if msg["status"] >= 200:
                    self.responses[(a.conn, msg["cseq"])] = msg
                if user.startswith("chat-cust"):
                    self._check_customer_frame(user, msg)
                continue
            self.received.setdefault(user, []).append(msg)
            if user.startswith("chat-cust"):
                self._check_customer_frame(user, msg)
            if msg["method"] == "INVITE" and msg.get("channel") == "chat":  # agents accept at once
                todo += self.core.handle(a.conn, {"type": "response", "method": "INVITE", "cseq": msg["cseq"],
                                                  "status": 200, "call_id": msg["call_id"]}, now=self.t)

    def _check_customer_frame(self, customer: str, msg: dict[str, Any]) -> None:
        text = str(msg)
        if "chat-sup" in text or "Chat Supervisor" in text:
            self.report.violate(f"{customer} received a supervisor's name: {text[:200]}")
        if msg.get("event") in ("chat-state", "session-ended") or "supervisors" in msg:
            self.report.violate(f"{customer} received supervision state: {text[:200]}")

    def _at(self, delay: float, kind: str, *args: Any) -> None:
        heapq.heappush(self._events, (self.t + delay, next(self._n), kind, args))

    def _exp(self, mean: float) -> float:
        return self.rng.expovariate(1 / mean)

    # ------------------------------------------------------------------ events
    def _arrival(self) -> None:
        self._at(self._exp(60 / self.cfg.arrival_per_min), "arrival")
        cust = f"chat-cust{next(self._customers)}"
        self._sign_in(cust, "customer", "Customer")
        r = self._request(cust, "INVITE", to="queue:support", channel="chat")
        if r["status"] != 200:
            self.report.chats_refused += 1
            return
        self.report.chats_started += 1
        chat = _Live(r["contact_id"], cust, r["agent"])
        self.live[chat.contact_id] = chat
        self._at(self._exp(60 / self.cfg.messages_per_min), "write", chat.contact_id)
        self._at(self._exp(self.cfg.mean_duration_s), "end", chat.contact_id)
        if self.free_sups and self.rng.random() < self.cfg.monitor_probability:
            self._at(self._exp(5.0), "watch", chat.contact_id)

    def _write(self, cid: str) -> None:
        chat = self.live.get(cid)
        if chat is None:
            return
        self._at(self._exp(60 / self.cfg.messages_per_min), "write", cid)
        who = chat.customer if self.rng.random() < 0.5 else chat.agent
        r = self._request(who, "MESSAGE", contact_id=cid, text=f"message from {who} at {self.t:.1f}")
        if r["status"] != 200:
            self.report.violate(f"{who}'s MESSAGE in {cid} refused: {r}")
            return
        chat.written.append(r["seq"])
        self.report.messages += 1

    def _watch(self, cid: str) -> None:
        chat = self.live.get(cid)
        if chat is None or not self.free_sups:
            return
        sup = self.free_sups.pop()
        before = len(self.received.get(chat.customer, []))
        r = self._request(sup, "INVITE", to=f"chat:{cid}")
        if r["status"] != 200:
            self.free_sups.append(sup)
            return
        self.report.supervisor_joins += 1
        if [e["seq"] for e in r["transcript"]] != chat.written:
            self.report.violate(f"{sup} joined {cid} with an incomplete transcript")
        chat.supervisor, chat.sup_from = sup, len(chat.written) + 1
        if self.rng.random() < self.cfg.barge_probability:
            self._at(self._exp(10.0), "barge", cid)
        if len(self.received.get(chat.customer, [])) != before:
            self.report.violate(f"{chat.customer} was told that {sup} joined")

    def _barge(self, cid: str) -> None:
        chat = self.live.get(cid)
        if chat is None or chat.supervisor is None:
            return
        if self._request(chat.supervisor, "INFO", call_id=cid, action="mode", mode="barge")["status"] != 200:
            return
        n_cust, n_agent = len(self.received.get(chat.customer, [])), len(self.received.get(chat.agent, []))
        r = self._request(chat.supervisor, "MESSAGE", contact_id=cid, text="the team can help")
        if r["status"] != 200:
            self.report.violate(f"barged MESSAGE refused: {r}")
            return
        chat.written.append(r["seq"])
        chat.sup_own.add(r["seq"])
        self.report.messages += 1
        self.report.barged_messages += 1
        got_c = [m for m in self.received.get(chat.customer, [])[n_cust:] if m.get("seq") == r["seq"]]
        got_a = [m for m in self.received.get(chat.agent, [])[n_agent:] if m.get("seq") == r["seq"]]
        if not got_c or not got_a:
            self.report.violate(f"barged message {cid}#{r['seq']} missed the {'customer' if not got_c else 'agent'}")
        elif got_c[0].get("display") != "Supervisor":
            self.report.violate(f"barged message to the customer not labelled Supervisor: {got_c[0]}")

    def _end(self, cid: str) -> None:
        chat = self.live.pop(cid, None)
        if chat is None:
            return
        who = chat.agent if self.rng.random() < 0.5 else chat.customer
        self._request(who, "BYE", call_id=cid)
        self.report.chats_completed += 1
        if chat.supervisor is not None:
            seen = [m["seq"] for m in self.received.get(chat.supervisor, [])
                    if m.get("method") == "MESSAGE" and m.get("contact_id") == cid]
            missing = [s for s in chat.written[chat.sup_from - 1:] if s not in seen and s not in chat.sup_own]
            if missing:
                self.report.violate(f"{chat.supervisor} missed messages {missing} of {cid}")
            ended = [m for m in self.received.get(chat.supervisor, [])
                     if m.get("event") == "session-ended" and m.get("contact_id") == cid]
            if not ended or not ended[-1].get("reason"):
                self.report.violate(f"{chat.supervisor} was not told why {cid} ended")
            self.free_sups.append(chat.supervisor)
        self._apply(self.core.disconnect(self.conn.pop(chat.customer), now=self.t))

    def run(self) -> ChatReport:
        if self.cfg.arrival_per_min <= 0:
            return self.report
        self._at(self._exp(60 / self.cfg.arrival_per_min), "arrival")
        handlers = {"arrival": self._arrival, "write": self._write, "watch": self._watch, "barge": self._barge,
                    "end": self._end}
        while self._events and self._events[0][0] <= self.duration_s:
            self.t, _, kind, args = heapq.heappop(self._events)
            handlers[kind](*args)
        return self.report
