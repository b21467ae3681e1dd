"""Chat contacts on the sans-IO core (in-process): offer, messages, transcript, monitoring, barging, ending, limits."""

from __future__ import annotations

from bargein.mixer.limits import CallLimits
from helpers.inprocess import Client, Harness, start_call


def start_chat(h: Harness, customer: str = "customer1", agent: str | Client = "agent1") -> tuple[Client, Client, str]:
    a = agent if isinstance(agent, Client) else h.client(agent, state="available")
    c = h.client(customer)
    r = c.request("INVITE", to="queue:support", channel="chat")
    assert r["status"] == 180, r
    contact_id = r["contact_id"]
    inv = a.answer(sdp=None)
    assert inv["channel"] == "chat" and inv["contact_id"] == contact_id
    assert any(m.get("status") == 200 and m.get("contact_id") == contact_id for m in c.inbox), c.inbox
    return c, a, contact_id


def messages(client: Client, contact_id: str) -> list[dict]:
    return [m for m in client.inbox if m.get("method") == "MESSAGE" and m.get("type") == "request"
            and m["contact_id"] == contact_id]


def test_customer_and_agent_exchange_ordered_messages(h: Harness) -> None:
    c, a, cid = start_chat(h)
    r1 = c.request("MESSAGE", contact_id=cid, text="hello")
    h.clock.t += 1
    r2 = a.request("MESSAGE", contact_id=cid, text="hi, how can I help?")
    assert (r1["status"], r1["seq"]) == (200, 1) and (r2["status"], r2["seq"]) == (200, 2)
    assert r2["at"] == r1["at"] + 1  # server time
    assert [m["text"] for m in messages(a, cid)] == ["hello"]
    got = messages(c, cid)
    assert [(m["text"], m["from"], m["display"]) for m in got] == [("hi, how can I help?", "agent", "Agent 1")]
    assert [e.seq for e in h.core.chat.chats[cid].transcript] == [1, 2]


def test_waiting_customer_messages_reach_the_agent_in_the_ack(h: Harness) -> None:
    a = h.client("agent1", state="available")
    c = h.client("customer1")
    cid = c.request("INVITE", to="queue:support", channel="chat")["contact_id"]
    assert c.request("MESSAGE", contact_id=cid, text="anyone there?")["status"] == 200
    a.answer(sdp=None)
    ack = a.pop("ACK")
    assert [e["text"] for e in ack["transcript"]] == ["anyone there?"]


def test_agent_holds_chats_and_a_call_at_once_up_to_the_limit() -> None:
    h = Harness(max_chats_per_agent=2)
    c0, a, call_id = start_call(h, customer="customer5")
    _, _, one = start_chat(h, "customer1", a)
    _, _, two = start_chat(h, "customer2", a)
    row = next(r for r in h.core.agents_view() if r["agent"] == "agent1")
    assert row["call_id"] == call_id and row["chat_count"] == 2
    assert [x["contact_id"] for x in row["chats"]] == [one, two]
    third = h.client("customer3").request("INVITE", to="queue:support", channel="chat")
    assert third["status"] == 480  # the only agent is full


def test_chats_go_to_the_agent_with_fewest(h: Harness) -> None:
    a1 = h.client("agent1", state="available")
    a2 = h.client("agent2", state="available")
    _, _, _ = start_chat(h, "customer1", a1)
    c = h.client("customer2")
    r = c.request("INVITE", to="queue:support", channel="chat")
    assert r["agent"] == "agent2"
    a2.answer(sdp=None)


def test_declined_and_timed_out_offers_go_to_the_next_agent(h: Harness) -> None:
    a1 = h.client("agent1", state="available")
    a2 = h.client("agent2", state="available")
    c = h.client("customer1")
    r = c.request("INVITE", to="queue:support", channel="chat")
    first = a1 if r["agent"] == "agent1" else a2
    second = a2 if first is a1 else a1
    first.answer(sdp=None, status=486)
    assert second.pop("INVITE") is not None
    h.clock.t += h.core.settings.ring_timeout_s + 1
    h.apply(h.core.poll())
    assert second.pop("CANCEL") is not None
    final = [m for m in c.inbox if m.get("method") == "INVITE" and m.get("status", 0) >= 300]
    assert final and final[-1]["status"] == 408
    assert r["contact_id"] not in h.core.chat


def test_monitoring_supervisor_gets_transcript_then_live_and_customer_sees_nothing(h: Harness) -> None:
    c, a, cid = start_chat(h)
    c.request("MESSAGE", contact_id=cid, text="one")
    a.request("MESSAGE", contact_id=cid, text="two")
    before = list(c.inbox)
    s = h.client("supervisor1")
    r = s.request("INVITE", to=f"chat:{cid}")
    assert r["status"] == 200 and r["mode"] == "monitor"
    assert [(e["seq"], e["text"]) for e in r["transcript"]] == [(1, "one"), (2, "two")]
    c.request("MESSAGE", contact_id=cid, text="three")
    assert [m["text"] for m in messages(s, cid)] == ["three"]
    w = s.request("MESSAGE", contact_id=cid, text="psst")
    assert w["status"] == 403 and "read-only" in w["reason"]
    assert a.last("chat-state")["supervisors"] == [{"user": "supervisor1", "mode": "monitor"}]
    assert s.request("BYE", call_id=cid)["status"] == 200
    new = [m for m in c.inbox[len(before):] if m.get("type") == "request"]
    assert [m["method"] for m in new] == []  # the customer's own MESSAGE got a response, nothing else


def test_barged_message_reaches_both_and_names_no_supervisor_to_the_customer(h: Harness) -> None:
    c, a, cid = start_chat(h)
    s = h.client("supervisor1")
    assert s.request("INVITE", to=f"chat:{cid}")["status"] == 200
    assert s.request("INFO", call_id=cid, action="mode", mode="barge")["status"] == 200
    assert s.request("MESSAGE", contact_id=cid, text="I can help here")["status"] == 200
    to_customer = messages(c, cid)[-1]
    to_agent = messages(a, cid)[-1]
    assert to_customer["from"] == "supervisor" and to_customer["display"] == "Supervisor"
    assert "supervisor1" not in str(to_customer) and "Supervisor 1" not in str(to_customer)
    assert to_agent["user"] == "supervisor1" and to_agent["text"] == "I can help here"
    assert all("supervisor1" not in str(m) for m in c.inbox)


def test_coaching_supervisor_whispers_to_the_agent_only(h: Harness) -> None:
    c, a, cid = start_chat(h)
    s = h.client("supervisor1")
    assert s.request("INVITE", to=f"chat:{cid}", mode="coach")["status"] == 200
    s.request("MESSAGE", contact_id=cid, text="offer the discount")
    assert messages(a, cid)[-1]["whisper"] is True
    assert messages(c, cid) == []


def test_barge_refused_by_profile_and_by_switch() -> None:
    h = Harness()
    _, _, cid = start_chat(h)
    m = h.client("monitoronly1")
    assert m.request("INVITE", to=f"chat:{cid}")["status"] == 200
    r = m.request("INFO", call_id=cid, action="mode", mode="barge")
    assert r["status"] == 403 and "realtime_barge" in r["reason"]
    assert m.request("INVITE", to="chat:nope")["status"] in (403, 404)
    off = Harness(enhanced_monitoring=False)
    _, _, cid = start_chat(off)
    s = off.client("supervisor1")
    r = s.request("INVITE", to=f"chat:{cid}", mode="barge")
    assert r["status"] == 403 and "enhanced monitoring" in r["reason"]


def test_limits_max_supervisors_and_barging() -> None:
    h = Harness(limits=CallLimits(max_supervisors=1, max_barging=1))
    _, _, cid = start_chat(h)
    assert h.client("supervisor1").request("INVITE", to=f"chat:{cid}")["status"] == 200
    r = h.client("supervisor2").request("INVITE", to=f"chat:{cid}")
    assert r["status"] == 486


def test_agent_bye_ends_and_supervisor_is_told_why(h: Harness) -> None:
    c, a, cid = start_chat(h)
    s = h.client("supervisor1")
    s.request("INVITE", to=f"chat:{cid}")
    ended: list = []
    h.core.chat.on_ended.append(ended.append)
    a.request("MESSAGE", contact_id=cid, text="bye now")
    assert a.request("BYE", call_id=cid)["status"] == 200
    assert "agent ended" in s.pop("NOTIFY", event="session-ended")["reason"]
    assert c.pop("BYE")["contact_id"] == cid
    assert cid not in h.core.chat and [x.contact_id for x in ended] == [cid]
    assert ended[0].as_dict()["transcript"][0]["text"] == "bye now"
    assert h.core.chat.of_agent("agent1") == []


def test_customer_disconnect_ends_and_supervisor_is_told(h: Harness) -> None:
    c, a, cid = start_chat(h)
    s = h.client("supervisor1")
    s.request("INVITE", to=f"chat:{cid}")
    c.disconnect()
    assert "customer left" in s.pop("NOTIFY", event="session-ended")["reason"]
    assert "customer" in a.pop("BYE")["reason"]


def test_malformed_and_stranger_messages(h: Harness) -> None:
    c, a, cid = start_chat(h)
    r = c.request("MESSAGE", contact_id=cid)
    assert r["status"] == 400 and "text" in r["reason"]
    r = c.request("MESSAGE", text="x")
    assert r["status"] == 400 and "contact_id" in r["reason"]
    r = c.request("MESSAGE", contact_id=cid, text="x" * 5000)
    assert r["status"] == 400 and "text" in r["reason"]
    assert h.client("customer2").request("MESSAGE", contact_id=cid, text="hi")["status"] == 403
    assert c.request("MESSAGE", contact_id="chat-999", text="hi")["status"] == 481


def test_a_failing_ended_hook_does_not_stop_the_ending(h: Harness) -> None:
    c, a, cid = start_chat(h)

    def broken(chat: object) -> None:
        raise OSError("disk full")
    h.core.chat.on_ended.append(broken)
    assert c.request("BYE", call_id=cid)["status"] == 200
    assert a.pop("BYE")["contact_id"] == cid and cid not in h.core.chat


def test_customer_gives_up_while_waiting(h: Harness) -> None:
    a = h.client("agent1", state="available")
    c = h.client("customer1")
    start = len(c.inbox)
    c.send({"method": "INVITE", "cseq": 10, "to": "queue:support", "channel": "chat"})
    cid = c.inbox[start]["contact_id"]
    c.cseq = 10
    assert c.request("CANCEL", call_id=cid)["status"] == 200
    assert any(m.get("status") == 487 and m.get("cseq") == 10 for m in c.inbox)
    assert a.pop("CANCEL")["contact_id"] == cid
    assert h.core.chat.of_agent("agent1") == []


def test_one_live_chat_per_customer(h: Harness) -> None:
    c, _, cid = start_chat(h)
    h.client("agent2", state="available")
    r = c.request("INVITE", to="queue:support", channel="chat")
    assert r["status"] == 486 and cid in r["reason"]
