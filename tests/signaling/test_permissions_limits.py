"""Permission matrix (each profile x each action), switches and limits, on the sans-IO core."""

import pytest
from bargein.mixer.limits import CallLimits
from bargein.signaling.settings import QueueSettings
from helpers.inprocess import Harness, start_call

# profile (demo user) -> action -> expected status
MATRIX = {
    "agent2": {"subscribe": 403, "monitor": 403, "barge": None, "coach": None, "call_queue": 200, "publish": 200},
    "customer2": {"subscribe": 403, "monitor": 403, "barge": None, "coach": None, "call_queue": 200,
                  "publish": 403},
    "supervisor1": {"subscribe": 200, "monitor": 200, "barge": 200, "coach": 200, "call_queue": 403,
                    "publish": 403},
    "monitoronly1": {"subscribe": 200, "monitor": 200, "barge": 403, "coach": 403, "call_queue": 403,
                     "publish": 403},
}


@pytest.mark.parametrize("user", list(MATRIX))
@pytest.mark.parametrize("action", ["subscribe", "monitor", "barge", "coach", "call_queue", "publish"])
def test_permission_matrix(user: str, action: str) -> None:
    h = Harness()
    _, _, call_id = start_call(h)
    expected = MATRIX[user][action]
    u = h.client(user)
    if action == "subscribe":
        status = u.request("SUBSCRIBE", event="agents")["status"]
    elif action == "monitor":
        status = u.request("INVITE", to=f"call:{call_id}")["status"]
    elif action in ("barge", "coach"):
        if expected is None:  # cannot even monitor, nor start straight in that mode
            assert u.request("INVITE", to=f"call:{call_id}")["status"] == 403
            assert u.request("INVITE", to=f"call:{call_id}", mode=action)["status"] == 403
            assert user not in h.legs_of(call_id)
            return
        assert u.request("INVITE", to=f"call:{call_id}")["status"] == 200
        r = u.request("INFO", call_id=call_id, action="mode", mode=action)
        status = r["status"]
        if status == 403:
            assert "realtime_barge" in r["reason"]
            assert h.legs_of(call_id)[user].mode.value == "monitor"  # still silent
        else:
            assert h.legs_of(call_id)[user].mode.value == action
    elif action == "publish":
        status = u.request("PUBLISH", state="available")["status"]
    else:
        h.client("agent3", state="available")
        status = u.request("INVITE", to="queue:support")["status"]
        status = 200 if status == 180 else status
    assert status == expected, (user, action)


def test_outsiders_cannot_act_on_a_call() -> None:
    h = Harness()
    _, _, call_id = start_call(h)
    other = h.client("customer2")
    assert other.request("BYE", call_id=call_id)["status"] == 403
    assert other.request("INFO", call_id=call_id, action="mute", target="agent1")["status"] == 403
    assert other.request("REFER", call_id=call_id, target="agent2")["status"] == 403
    assert other.request("INFO", call_id="call-999", action="mute")["status"] == 481
    assert set(h.legs_of(call_id)) == {"customer1", "agent1"}


def test_enhanced_monitoring_off_monitor_works_barge_refused_with_reason() -> None:
    h = Harness(enhanced_monitoring=False)
    _, _, call_id = start_call(h)
    s = h.client("supervisor1")
    assert s.request("INVITE", to=f"call:{call_id}")["status"] == 200
    for mode in ("barge", "coach"):
        r = s.request("INFO", call_id=call_id, action="mode", mode=mode)
        assert r["status"] == 403 and "enhanced monitoring is off" in r["reason"]


def test_queue_that_does_not_allow_monitoring() -> None:
    h = Harness(queues={"support": QueueSettings(monitoring_allowed=False)})
    _, _, call_id = start_call(h)
    r = h.client("supervisor1").request("INVITE", to=f"call:{call_id}")
    assert r["status"] == 403 and "not allowed" in r["reason"]


def test_limits_two_supervisors_one_barging_party_limit() -> None:
    h = Harness(limits=CallLimits(max_parties=3, max_supervisors=2, max_barging=1))
    _, a, call_id = start_call(h)
    s1, s2, s3 = h.client("supervisor1"), h.client("supervisor2"), h.client("supervisor3")
    assert s1.request("INVITE", to=f"call:{call_id}")["status"] == 200
    assert s2.request("INVITE", to=f"call:{call_id}")["status"] == 200
    r = s3.request("INVITE", to=f"call:{call_id}")
    assert r["status"] == 486 and "supervisor limit" in r["reason"]
    assert s1.request("INFO", call_id=call_id, action="mode", mode="barge")["status"] == 200
    r = s2.request("INFO", call_id=call_id, action="mode", mode="barge")
    assert r["status"] == 486 and "barge limit" in r["reason"]
    assert s2.request("INFO", call_id=call_id, action="mode", mode="coach")["status"] == 200
    p = h.client("customer2")
    assert a.request("REFER", call_id=call_id, target="customer2")["status"] == 202
    p.answer()
    h.client("customer3")
    r = a.request("REFER", call_id=call_id, target="customer3")
    assert r["status"] == 486 and "party limit" in r["reason"]


def test_supervisor_on_one_call_at_a_time_and_not_before_answer() -> None:
    h = Harness()
    _, _, call_id = start_call(h)
    h.client("agent2", state="available")
    c2 = h.client("customer2")
    ringing = c2.request("INVITE", to="queue:support")["call_id"]
    s = h.client("supervisor1")
    r = s.request("INVITE", to=f"call:{ringing}")
    assert r["status"] == 480 and "not answered" in r["reason"]
    assert s.request("INVITE", to=f"call:{call_id}")["status"] == 200
    assert s.request("INVITE", to=f"call:{call_id}")["status"] == 486
