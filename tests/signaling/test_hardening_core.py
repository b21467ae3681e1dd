"""Issue 9, core items: each test failed on the code before its fix."""

import json

import pytest
from bargein.signaling import invariants
from bargein.signaling.actions import Send
from bargein.signaling.messages import METHODS
from helpers.inprocess import Harness, offer, start_call


def legs(h: Harness) -> dict[str, str]:
    return {leg: v["call_id"] for leg, v in h.legs.items()}


def offered(client) -> bool:  # noqa: ANN001
    return any(m.get("type") == "request" and m["method"] == "INVITE" for m in client.inbox)


# ------------------------------------------------------------------------------ item 1
def test_an_agent_who_calls_a_queue_is_never_offered_its_own_call(h: Harness) -> None:
    a1 = h.client("agent1", state="available")  # longest idle: would be picked first
    a2 = h.client("agent2", state="available")
    r = a1.request("INVITE", to="queue:support")
    assert r["status"] == 180 and r["agent"] == "agent2", r
    assert a1.pop("INVITE") is None
    inv = a2.pop("INVITE")
    assert inv is not None and inv["from"] == "agent1"
    invariants.check(h.core, legs(h))


def test_a_caller_alone_in_the_queue_gets_480_and_stays_idle(h: Harness) -> None:
    a1 = h.client("agent1", state="available")
    r = a1.request("INVITE", to="queue:support")
    assert r["status"] == 480 and a1.pop("INVITE") is None
    assert h.core.acd.idle() == ["agent1"] and not h.core.user_call
    invariants.check(h.core, legs(h))


def test_second_invite_from_the_same_agent_gets_486_and_no_call_outlives_its_connections(h: Harness) -> None:
    """The sequence of the report: the agent declines its own call (when offered), calls again, answers, and the
    other agent hangs up; no call may survive without connections and the mixer keeps no stray leg."""
    a1 = h.client("agent1", state="available")
    a2 = h.client("agent2", state="available")
    first = a1.request("INVITE", to="queue:support")
    call_id = first["call_id"]
    if offered(a1):  # the old code offered agent1 its own call
        a1.answer(status=603)
    assert a1.request("INVITE", to="queue:support")["status"] == 486
    a2.answer()
    if offered(a1):
        a1.answer()
    invariants.check(h.core, legs(h))
    assert a2.request("BYE", call_id=call_id)["status"] == 200
    a1.disconnect()
    a2.disconnect()
    assert not h.core.calls and not h.legs
    invariants.check(h.core, legs(h))


# ------------------------------------------------------------------------------ item 5
def barging(h: Harness):  # noqa: ANN201
    c, a, call_id = start_call(h)
    s = h.client("supervisor1")
    assert s.request("INVITE", to=f"call:{call_id}", mode="barge")["status"] == 200
    return c, a, s, call_id


def test_a_supervisors_mute_survives_the_partys_own_mute_and_unmute(h: Harness) -> None:
    c, a, s, call_id = barging(h)
    assert s.request("INFO", call_id=call_id, action="mute", target="customer1")["status"] == 200
    assert c.request("INFO", call_id=call_id, action="mute", value=True)["status"] == 200
    assert c.request("INFO", call_id=call_id, action="mute", value=False)["status"] == 403
    assert h.legs_of(call_id)["customer1"].muted  # still muted by the supervisor
    assert s.request("INFO", call_id=call_id, action="mode", mode="monitor")["status"] == 200  # end of barge
    assert h.legs_of(call_id)["customer1"].muted  # the customer's own mute is still on
    assert c.request("INFO", call_id=call_id, action="mute", value=False)["status"] == 200
    assert not h.legs_of(call_id)["customer1"].muted


def test_the_partys_own_mute_survives_the_end_of_barge(h: Harness) -> None:
    c, a, s, call_id = barging(h)
    assert c.request("INFO", call_id=call_id, action="mute", value=True)["status"] == 200
    assert s.request("INFO", call_id=call_id, action="mute", target="customer1")["status"] == 200
    assert s.request("BYE", call_id=call_id)["status"] == 200
    assert h.legs_of(call_id)["customer1"].muted  # the customer's own mute is theirs


def test_a_held_customer_cannot_unhold_itself_only_the_agent_can(h: Harness) -> None:
    c, a, call_id = start_call(h)
    assert a.request("INFO", call_id=call_id, action="hold", target="customer1")["status"] == 200
    assert c.request("INFO", call_id=call_id, action="hold", value=False)["status"] == 403
    assert h.legs_of(call_id)["customer1"].held
    s = h.client("supervisor1")
    assert s.request("INVITE", to=f"call:{call_id}", mode="barge")["status"] == 200
    r = s.request("INFO", call_id=call_id, action="hold", target="customer1", value=False)
    assert r["status"] == 403 and h.legs_of(call_id)["customer1"].held  # not the supervisor's hold
    assert a.request("INFO", call_id=call_id, action="hold", target="customer1", value=False)["status"] == 200
    assert not h.legs_of(call_id)["customer1"].held


def test_a_barging_supervisor_may_mute_the_agent_until_the_barge_ends(h: Harness) -> None:
    """docs/protocol.md: while barging a supervisor may mute any participant but another supervisor (product:
    "may mute or drop a participant"; the agent cannot be dropped); the agent is never left muted."""
    c, a, s, call_id = barging(h)
    assert s.request("INFO", call_id=call_id, action="mute", target="agent1")["status"] == 200
    assert a.request("INFO", call_id=call_id, action="mute", value=False)["status"] == 403
    assert h.legs_of(call_id)["agent1"].muted
    assert s.request("INFO", call_id=call_id, action="mode", mode="coach")["status"] == 200
    assert not h.legs_of(call_id)["agent1"].muted


# ------------------------------------------------------------------------------ item 6
def test_nothing_a_supervisor_does_sends_anything_to_the_customer(h: Harness) -> None:
    c, a, call_id = start_call(h)
    p = h.client("customer2")
    assert a.request("REFER", call_id=call_id, target="customer2")["status"] == 202
    p.answer(sdp=offer("party"))
    before = {x: len(x.inbox) for x in (c, p)}
    s = h.client("supervisor1")
    assert s.request("INVITE", to=f"call:{call_id}")["status"] == 200
    for mode in ("barge", "coach", "barge"):
        assert s.request("INFO", call_id=call_id, action="mode", mode=mode)["status"] == 200
    assert s.request("INFO", call_id=call_id, action="hold", target="customer2")["status"] == 200
    assert {x: len(x.inbox) for x in (c, p)} == before, (c.inbox, p.inbox)
    # a mute is the one thing the muted party sees (its microphone is off), and it names nobody
    assert s.request("INFO", call_id=call_id, action="mute", target="customer1")["status"] == 200
    told = c.inbox[before[c]:]
    assert len(told) == 1 and "supervisor" not in str(told) and told[0]["participants"][0]["muted"]
    before = {x: len(x.inbox) for x in (c, p)}
    assert s.request("BYE", call_id=call_id)["status"] == 200  # the end of the barge releases the mute
    assert "supervisor" not in str(c.inbox[before[c]:]) + str(p.inbox[before[p]:])
    assert a.last("call-state")["supervisors"] == []  # the agent was told all along


def test_refusals_and_byes_to_a_customer_never_mention_a_supervisor(h: Harness) -> None:
    c, a, call_id = start_call(h)
    s = h.client("supervisor2")
    assert s.request("INVITE", to=f"call:{call_id}", mode="barge")["status"] == 200
    assert s.request("INFO", call_id=call_id, action="mute", target="customer1")["status"] == 200
    answers = [c.request("INFO", call_id=call_id, action="mute", value=False),
               c.request("INFO", call_id=call_id, action="mute", target="agent1")]
    present = c.request("INFO", call_id=call_id, action="mute", target="supervisor2")
    absent = c.request("INFO", call_id=call_id, action="mute", target="supervisor3")
    assert present["status"] == absent["status"] == 404  # a present supervisor looks like nobody
    assert present["reason"].replace("supervisor2", "?") == absent["reason"].replace("supervisor3", "?")
    assert s.request("INFO", call_id=call_id, action="drop", target="customer1")["status"] == 200
    answers.append(c.pop("BYE"))
    assert answers[-1]["reason"] == "the contact center ended the call"
    probes = (present, absent)
    assert all("supervisor" not in json.dumps(m) for m in c.inbox if m not in probes), c.inbox


# ------------------------------------------------------------------------------ item 10
@pytest.mark.parametrize(("field", "value"), [("cseq", "7"), ("cseq", 8.0), ("cseq", True), ("value", "yes"),
                                              ("value", 1), ("status", "200")])
def test_strict_types_name_the_field(h: Harness, field: str, value: object) -> None:
    c, a, call_id = start_call(h)
    frame = {"method": "INFO", "cseq": 50, "call_id": call_id, "action": "mute", "value": True}
    if field == "status":
        frame = {"type": "response", "method": "INVITE", "cseq": 1, "status": "200", "call_id": call_id}
    frame[field] = value
    c.send(json.dumps(frame))
    r = c.inbox[-1]
    assert r["type"] == "response" and r["status"] == 400 and f"'{field}'" in r["reason"], r
    assert not h.legs_of(call_id)["customer1"].muted


def test_405_carries_the_allowed_methods(h: Harness) -> None:
    c = h.client("customer1")
    c.send({"method": "FROB", "cseq": 9})
    r = c.inbox[-1]
    assert r["status"] == 405 and r["allow"] == sorted(METHODS) and r["cseq"] == 9, r


def test_the_agent_is_rung_only_once_the_customers_offer_is_answered(h: Harness) -> None:
    a = h.client("agent1", state="available")
    c = h.client("customer1")
    c.cseq += 1
    actions = h.core.handle(c.conn, {"method": "INVITE", "cseq": c.cseq, "to": "queue:support",
                                     "sdp": offer("customer")})
    assert {x.conn for x in actions if isinstance(x, Send)} == {c.conn}  # nobody rung before the answer
    assert a.request("PUBLISH", state="away")["status"] == 200  # meanwhile the only agent steps away
    h.apply(actions)  # the offer is answered now
    statuses = [m["status"] for m in c.inbox if m.get("cseq") == c.cseq]
    assert statuses == [100, 183, 480], c.inbox  # a final 480, no 180 and no agent rung
    assert a.pop("INVITE") is None and not h.core.calls
    invariants.check(h.core, legs(h))


def test_a_refused_offer_rings_nobody(h: Harness) -> None:
    a = h.client("agent1", state="available")
    c = h.client("customer1")
    c.cseq += 1
    actions = h.core.handle(c.conn, {"method": "INVITE", "cseq": c.cseq, "to": "queue:support",
                                     "sdp": offer("customer")})
    leg = next(x.media_leg for x in actions if isinstance(x, Send) and x.media_leg)
    h.apply([x for x in actions if not (isinstance(x, Send) and x.media_leg)])  # the adapter answers 488 itself
    h.apply(h.core.media_failed(leg, refused=True))
    assert a.pop("INVITE") is None and a.pop("CANCEL") is None and not h.core.calls and not h.legs
    assert all(m.get("status") != 180 for m in c.inbox)
    invariants.check(h.core, legs(h))


@pytest.mark.parametrize("who", ["customer1", "agent1", "supervisor1"])
def test_the_party_whose_media_died_is_told_too(h: Harness, who: str) -> None:
    c, a, call_id = start_call(h)
    s = h.client("supervisor1")
    assert s.request("INVITE", to=f"call:{call_id}")["status"] == 200
    client = {"customer1": c, "agent1": a, "supervisor1": s}[who]
    leg = next(k for k, v in h.legs.items() if v["user"] == who)
    h.apply(h.core.media_failed(leg))
    told = client.pop("NOTIFY", event="session-ended") if who == "supervisor1" else client.pop("BYE")
    assert told is not None and told["reason"] == "your media connection was lost", client.inbox
    assert (call_id in h.core.calls) == (who == "supervisor1")  # a supervisor leaving never ends the call
    invariants.check(h.core, legs(h))


def test_a_ringing_customer_whose_media_died_gets_a_final_response(h: Harness) -> None:
    h.client("agent1", state="available")
    c = h.client("customer1")
    r = c.request("INVITE", to="queue:support", sdp=offer("customer"))
    assert r["status"] == 180
    h.apply(h.core.media_failed(next(iter(h.legs))))
    final = [m for m in c.inbox if m.get("cseq") == r["cseq"] and m["status"] >= 200]
    assert [m["status"] for m in final] == [480] and not h.core.calls
