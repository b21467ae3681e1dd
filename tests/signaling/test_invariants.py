"""A hypothesis state machine over many clients of the sans-IO core; the invariants hold after every message.

Clients sign in (and again, replacing their session), call a queue (customers and agents), answer or
decline server INVITEs, hang up, cancel, vanish, monitor / barge / coach / leave, mute, hold, drop,
refer; media dies; time passes (ring timeouts). After each step: :func:`invariants.check`, no 500, no
response to a request after its final response, and no supervisor's name in anything a customer receives.
"""


import json

from bargein.signaling import invariants
from bargein.signaling.messages import is_final
from helpers.inprocess import Harness, offer
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

CUSTOMERS = ["customer1", "customer2"]
AGENTS = ["agent1", "agent2", "agent3"]
SUPERVISORS = ["supervisor1", "supervisor2", "monitoronly1"]
USERS = CUSTOMERS + AGENTS + SUPERVISORS
users, callers, agents, sups = (st.sampled_from(x) for x in (USERS, CUSTOMERS + AGENTS, AGENTS, SUPERVISORS))
targets = st.one_of(st.none(), st.sampled_from(USERS))


class Signaling(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness(max_requests_per_second=1e9, ring_timeout_s=20)
        self.conn: dict[str, str] = {}  # user -> its newest connection
        self.cseq: dict[str, int] = {}
        self.final: set[tuple[str, int]] = set()  # (conn, cseq) of requests that got their final response
        self.seen: dict[str, int] = {}  # conn -> how much of its inbox was checked
        self.user_of: dict[str, str] = {}  # conn -> user
        self.n = 0

    # ---------------------------------------------------------------------------------- helpers
    def send(self, user: str, method: str, **fields: object) -> None:
        conn = self.conn.get(user)
        if conn is None:
            return
        self.cseq[conn] += 1
        self.h.apply(self.h.core.handle(conn, {"method": method, "cseq": self.cseq[conn], **fields}))

    def call_of(self, user: str, pick: int) -> str:
        """The user's own call, or any live call, or one that does not exist."""
        calls = sorted(self.h.core.calls)
        return self.h.core.user_call.get(user) or (calls[pick % len(calls)] if calls else "call-999")

    # ---------------------------------------------------------------------------------- rules
    @rule(user=users, state=st.sampled_from([None, "available"]))
    def sign_in(self, user: str, state: str | None) -> None:
        self.n += 1
        conn = f"c{self.n}"
        self.h.apply(self.h.core.connect(conn))
        self.conn[user], self.cseq[conn], self.user_of[conn] = conn, 0, user
        self.send(user, "REGISTER", token=user)
        if state and user in AGENTS:
            self.send(user, "PUBLISH", state=state)

    @rule(agent=agents, state=st.sampled_from(["available", "away", "offline"]))
    def publish(self, agent: str, state: str) -> None:
        self.send(agent, "PUBLISH", state=state)

    @rule(user=callers, sdp=st.booleans())
    def call_queue(self, user: str, sdp: bool) -> None:
        self.send(user, "INVITE", to="queue:support", **({"sdp": offer(user)} if sdp else {}))

    @rule(user=users, status=st.sampled_from([180, 200, 200, 486, 603]))
    def answer(self, user: str, status: int) -> None:
        conn = self.conn.get(user)
        invites = [m for m in self.h.inbox.get(conn, []) if m.get("type") == "request" and m["method"] == "INVITE"]
        if invites:
            inv = invites[0]
            if is_final(status):
                self.h.inbox[conn].remove(inv)
            self.h.apply(self.h.core.handle(conn, {"type": "response", "method": "INVITE", "cseq": inv["cseq"],
                                                   "status": status, "call_id": inv["call_id"]}))

    @rule(user=users, pick=st.integers(0, 3))
    def bye(self, user: str, pick: int) -> None:
        self.send(user, "BYE", call_id=self.call_of(user, pick))

    @rule(user=callers, pick=st.integers(0, 3))
    def cancel(self, user: str, pick: int) -> None:
        self.send(user, "CANCEL", call_id=self.call_of(user, pick))

    @rule(user=users)
    def disconnect(self, user: str) -> None:
        conn = self.conn.pop(user, None)
        if conn is not None:
            self.h.apply(self.h.core.disconnect(conn))

    @rule(sup=sups, pick=st.integers(0, 3), mode=st.sampled_from(["monitor", "barge", "coach"]))
    def monitor(self, sup: str, pick: int, mode: str) -> None:
        self.send(sup, "INVITE", to=f"call:{self.call_of(sup, pick)}", mode=mode)

    @rule(sup=sups, mode=st.sampled_from(["monitor", "barge", "coach"]))
    def change_mode(self, sup: str, mode: str) -> None:
        self.send(sup, "INFO", call_id=self.call_of(sup, 0), action="mode", mode=mode)

    @rule(user=users, action=st.sampled_from(["mute", "hold", "drop"]), whom=targets, value=st.booleans())
    def control(self, user: str, action: str, whom: str | None, value: bool) -> None:
        self.send(user, "INFO", call_id=self.call_of(user, 0), action=action, value=value,
                  **({"target": whom} if whom else {}))

    @rule(agent=agents, whom=st.sampled_from(CUSTOMERS + AGENTS + SUPERVISORS[:1]))
    def refer(self, agent: str, whom: str) -> None:
        self.send(agent, "REFER", call_id=self.call_of(agent, 0), target=whom)

    @rule(pick=st.integers(0, 20))
    def media_dies(self, pick: int) -> None:
        legs = sorted(self.h.legs)
        if legs:
            self.h.apply(self.h.core.media_failed(legs[pick % len(legs)]))

    @rule(seconds=st.sampled_from([1.0, 5.0, 25.0]))
    def time_passes(self, seconds: float) -> None:
        self.h.clock.t += seconds
        self.h.apply(self.h.core.poll())

    # ---------------------------------------------------------------------------------- invariants
    @invariant()
    def core_invariants(self) -> None:
        invariants.check(self.h.core, {leg: v["call_id"] for leg, v in self.h.legs.items()})

    @invariant()
    def responses_are_sound(self) -> None:
        for conn, inbox in self.h.inbox.items():
            for msg in inbox[self.seen.get(conn, 0):]:
                if self.user_of.get(conn) in CUSTOMERS and msg.get("status") != 404:  # 404 echoes the asked name
                    assert not any(s in json.dumps(msg) for s in SUPERVISORS), f"a customer was told {msg}"
                if msg.get("type") != "response":
                    continue
                assert msg["status"] != 500, msg
                key = (conn, msg["cseq"])
                assert key not in self.final, f"a response after the final one: {msg}"
                if is_final(msg["status"]):
                    self.final.add(key)
            self.seen[conn] = len(inbox)


def test_many_clients_keep_the_invariants() -> None:
    run = Signaling.TestCase
    run.settings = settings(max_examples=150, stateful_step_count=50, deadline=None,
                            suppress_health_check=[HealthCheck.too_slow])
    run().runTest()


