"""The sans-IO core without sockets: calls, supervision, ending rules, records."""

from bargein.mixer.roles import Role, SupervisorMode
from helpers.inprocess import Harness, offer, start_call


def test_customer_calls_agent_answers_and_legs_exist(h: Harness) -> None:
    c, a, call_id = start_call(h)
    legs = h.legs_of(call_id)
    assert legs["customer1"].role is Role.CUSTOMER and legs["agent1"].role is Role.AGENT
    sdp = [m for m in c.inbox if m.get("status") == 183]
    assert sdp and sdp[0]["sdp"].startswith("answer-for-")
    ack = a.pop("ACK")
    assert ack and ack["sdp"].startswith("answer-for-")
    assert h.core.agents_view()[0]["state"] == "on-call"


def test_no_agent_available_gives_480(h: Harness) -> None:
    c = h.client("customer1")
    r = c.request("INVITE", to="queue:support")
    assert r["status"] == 480 and "no agent available" in r["reason"]


def test_supervisor_monitor_barge_coach_monitor_leave(h: Harness) -> None:
    c, a, call_id = start_call(h)
    s = h.client("supervisor1")
    r = s.request("INVITE", to=f"call:{call_id}", sdp=offer("sup"))
    assert r["status"] == 200 and r["mode"] == "monitor" and r["sdp"].startswith("answer-for-")
    assert h.legs_of(call_id)["supervisor1"].mode is SupervisorMode.MONITOR
    assert a.last("call-state")["supervisors"] == [{"user": "supervisor1", "mode": "monitor"}]
    assert "supervisors" not in c.last("call-state")  # the customer is never told
    for mode in ("barge", "coach", "monitor"):
        r = s.request("INFO", call_id=call_id, action="mode", mode=mode)
        assert r["status"] == 200, r
        assert h.legs_of(call_id)["supervisor1"].mode is SupervisorMode(mode)
        assert a.last("call-state")["supervisors"] == [{"user": "supervisor1", "mode": mode}]
    assert s.request("BYE", call_id=call_id)["status"] == 200
    assert "supervisor1" not in h.legs_of(call_id)
    assert set(h.legs_of(call_id)) == {"customer1", "agent1"}  # leaving never ends the call
    rec = h.core.records.monitors[-1]
    assert [x[1] for x in rec.mode_changes] == ["barge", "coach", "monitor"] and rec.ended is not None


def test_agent_hangup_ends_every_supervisor_session_with_reason(h: Harness) -> None:
    c, a, call_id = start_call(h)
    s1, s2 = h.client("supervisor1"), h.client("supervisor2")
    assert s1.request("INVITE", to=f"call:{call_id}")["status"] == 200
    assert s2.request("INVITE", to=f"call:{call_id}")["status"] == 200
    assert a.request("BYE", call_id=call_id)["status"] == 200
    for s in (s1, s2):
        ended = s.pop("NOTIFY", event="session-ended")
        assert ended and "agent ended the call" in ended["reason"]
    assert c.pop("BYE") is not None
    assert h.legs_of(call_id) == {}
    contact = h.core.records.contacts[-1]
    assert contact.ended_by == "agent1" and contact.agent == "agent1"
    assert all(r.ended is not None for r in h.core.records.monitors)


def test_customer_hangup_ends_supervision_too(h: Harness) -> None:
    c, a, call_id = start_call(h)
    s = h.client("supervisor1")
    s.request("INVITE", to=f"call:{call_id}", mode="monitor")
    c.request("BYE", call_id=call_id)
    assert s.pop("NOTIFY", event="session-ended")["reason"] == "the customer hung up"  # not "hung up (hung up)"
    assert a.pop("BYE") is not None


def test_supervisor_disconnect_leaves_call_agent_disconnect_ends_it(h: Harness) -> None:
    c, a, call_id = start_call(h)
    s = h.client("supervisor1")
    s.request("INVITE", to=f"call:{call_id}")
    s.disconnect()
    assert set(h.legs_of(call_id)) == {"customer1", "agent1"}
    s2 = h.client("supervisor2")
    s2.request("INVITE", to=f"call:{call_id}")
    a.disconnect()
    assert h.legs_of(call_id) == {}
    assert "agent ended the call" in s2.pop("NOTIFY", event="session-ended")["reason"]
    assert c.pop("BYE") is not None


def test_barging_supervisor_mutes_and_drops_and_mute_is_undone_on_leave(h: Harness) -> None:
    c, a, call_id = start_call(h)
    p = h.client("customer2")
    assert a.request("REFER", call_id=call_id, target="customer2")["status"] == 202
    p.answer(sdp=offer("party"))
    assert h.legs_of(call_id)["customer2"].role is Role.PARTY
    s = h.client("supervisor1")
    s.request("INVITE", to=f"call:{call_id}")
    r = s.request("INFO", call_id=call_id, action="mute", target="agent1")
    assert r["status"] == 403  # only while barging
    s.request("INFO", call_id=call_id, action="mode", mode="barge")
    assert s.request("INFO", call_id=call_id, action="mute", target="agent1")["status"] == 200
    assert h.legs_of(call_id)["agent1"].muted
    r = a.request("INFO", call_id=call_id, action="mute", value=False)  # the party's own flag: cannot undo it
    assert r["status"] == 403 and h.legs_of(call_id)["agent1"].muted
    assert s.request("INFO", call_id=call_id, action="drop", target="customer2")["status"] == 200
    assert "customer2" not in h.legs_of(call_id) and p.pop("BYE") is not None
    assert s.request("BYE", call_id=call_id)["status"] == 200
    assert not h.legs_of(call_id)["agent1"].muted  # never leave the agent muted


def test_dropped_customer_is_not_told_of_the_supervisor_and_the_agent_is_told_who(h: Harness) -> None:
    c, a, call_id = start_call(h)
    s = h.client("supervisor1")
    s.request("INVITE", to=f"call:{call_id}", mode="barge")
    assert s.request("INFO", call_id=call_id, action="mute", target="customer1")["status"] == 200
    r = c.request("INFO", call_id=call_id, action="mute", value=False)
    assert r["status"] == 403 and "supervisor" not in r["reason"]
    assert s.request("INFO", call_id=call_id, action="drop", target="customer1")["status"] == 200
    assert "supervisor" not in c.pop("BYE")["reason"]
    assert a.pop("BYE")["reason"] == "supervisor supervisor1 dropped the customer"
    assert call_id not in h.core.calls


def test_cancel_before_answer(h: Harness) -> None:
    a = h.client("agent1", state="available")
    c = h.client("customer1")
    r = c.request("INVITE", to="queue:support")
    call_id = r["call_id"]
    assert c.request("CANCEL", call_id=call_id)["status"] == 200
    assert any(m.get("status") == 487 for m in c.inbox)
    assert a.pop("INVITE") and a.pop("CANCEL")
    assert call_id not in h.core.calls and h.legs == {}


def test_agent_declines_next_agent_rings_then_ring_timeout(h: Harness) -> None:
    a1 = h.client("agent1", state="available")
    h.clock.t += 1
    a2 = h.client("agent2", state="available")
    c = h.client("customer1")
    call_id = c.request("INVITE", to="queue:support")["call_id"]
    a1.answer(status=486)  # agent1 (longest idle) declines
    assert a2.pop("INVITE")["call_id"] == call_id
    h.clock.t += 100
    h.apply(h.core.poll())
    assert a2.pop("CANCEL") is not None
    assert any(m.get("status") == 408 for m in c.inbox)
    assert call_id not in h.core.calls


def test_agents_view_subscription_updates(h: Harness) -> None:
    s = h.client("supervisor1")
    assert s.request("SUBSCRIBE", event="agents")["status"] == 200
    assert s.pop("NOTIFY", event="agents") is not None
    c, a, call_id = start_call(h)
    view = s.last("agents")["agents"]
    row = next(r for r in view if r["agent"] == "agent1")
    assert row["call_id"] == call_id and row["state"] == "on-call" and row["customer"] == "customer1"
    h.clock.t += 42
    s.request("INVITE", to=f"call:{call_id}")
    row = next(r for r in s.last("agents")["agents"] if r["agent"] == "agent1")
    assert row["supervisors"] == [{"user": "supervisor1", "mode": "monitor"}]
    assert row["call_duration_s"] == 42.0


def test_media_failure_frees_leg_like_bye(h: Harness) -> None:
    c, a, call_id = start_call(h)
    s = h.client("supervisor1")
    r = s.request("INVITE", to=f"call:{call_id}")
    h.apply(h.core.media_failed(r["leg"]))
    assert "supervisor1" not in h.legs_of(call_id)
    agent_leg = next(k for k, v in h.legs.items() if v["user"] == "agent1")
    h.apply(h.core.media_failed(agent_leg))
    assert call_id not in h.core.calls


def test_register_elsewhere_replaces_session(h: Harness) -> None:
    c, a, call_id = start_call(h)
    h.client("agent1")  # the agent reloads the page
    assert "conn1" in h.closed
    assert call_id not in h.core.calls  # the old session's call ended with it
