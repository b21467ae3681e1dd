"""The pure permission and limit checks: each raises Refused(status, reason) or lets the request through."""

import pytest
from bargein.mixer.limits import CallLimits
from bargein.mixer.roles import Role, SupervisorMode
from bargein.signaling import policy
from bargein.signaling.directory import demo_directory
from bargein.signaling.model import Call, CallState, Participant
from bargein.signaling.policy import Refused
from bargein.signaling.settings import QueueSettings, Settings

DIR = demo_directory()


def perms(name: str) -> frozenset[str]:
    return DIR.permissions(DIR.user(name))


def call(state: CallState = CallState.ACTIVE, queue: str = "support") -> Call:
    c = Call("call-1", queue, "customer1", "c", 1, 0.0, state=state)
    c.participants["customer1"] = Participant("customer1", Role.CUSTOMER, "leg-1", "c")
    if state is CallState.ACTIVE:
        c.participants["agent1"] = Participant("agent1", Role.AGENT, "leg-2", "a")
    return c


def refused(status: int, fn, *args, **kw) -> str:  # noqa: ANN001
    with pytest.raises(Refused) as exc:
        fn(*args, **kw)
    assert exc.value.status == status, exc.value
    return exc.value.reason


def test_calling_a_queue() -> None:
    s = Settings()
    policy.may_call_queue(DIR.user("customer1"), perms("customer1"), "support", s)
    assert "ccp_access" in refused(403, policy.may_call_queue, DIR.user("supervisor1"), perms("supervisor1"),
                                   "support", s)
    assert "support" in refused(404, policy.may_call_queue, DIR.user("customer1"), perms("customer1"), "nope", s)
    assert "call-7" in refused(486, policy.not_busy, {"customer1": "call-7"}, "customer1")


def test_membership() -> None:
    assert refused(481, policy.member, None, "call-9", "agent1") == "no call 'call-9'"
    assert refused(403, policy.member, call(), "call-1", "agent2")
    assert policy.member(call(CallState.RINGING), "call-1", "customer1")[1] is not None
    ringing = call(CallState.RINGING)
    ringing.participants.clear()
    assert policy.member(ringing, "call-1", "customer1") == (ringing, None)  # the ringing customer


def test_monitoring_and_modes() -> None:
    s = Settings(queues={"support": QueueSettings(), "private": QueueSettings(monitoring_allowed=False)})
    sup, mon = DIR.user("supervisor1"), DIR.user("monitoronly1")
    c = call()
    assert policy.may_monitor(sup, perms("supervisor1"), s, c, "call-1") is c
    assert "realtime_monitor" in refused(403, policy.may_monitor, DIR.user("agent1"), perms("agent1"), s, c, "x")
    refused(404, policy.may_monitor, sup, perms("supervisor1"), s, None, "call-9")
    refused(480, policy.may_monitor, sup, perms("supervisor1"), s, call(CallState.RINGING), "call-1")
    refused(403, policy.may_monitor, sup, perms("supervisor1"), s, call(queue="private"), "call-1")
    policy.may_set_mode(mon, perms("monitoronly1"), s, c, None, SupervisorMode.MONITOR)
    reason = refused(403, policy.may_set_mode, mon, perms("monitoronly1"), s, c, None, SupervisorMode.BARGE)
    assert reason == "profile MonitorOnly lacks realtime_barge: barge refused, still monitoring"
    off = Settings(enhanced_monitoring=False)
    assert "enhanced monitoring is off" in refused(403, policy.may_set_mode, sup, perms("supervisor1"), off, c,
                                                   None, SupervisorMode.COACH)
    c.participants["supervisor2"] = Participant("supervisor2", Role.SUPERVISOR, "leg-3", "s2",
                                                mode=SupervisorMode.BARGE)
    assert "barge limit" in refused(486, policy.may_set_mode, sup, perms("supervisor1"), s, c, None,
                                    SupervisorMode.BARGE)
    # changing one's own mode does not count oneself twice
    policy.may_set_mode(sup, perms("supervisor1"), s, c, c.participants["supervisor2"], SupervisorMode.BARGE)


def test_acting_on_participants() -> None:
    cust = Participant("customer1", Role.CUSTOMER, "l1", "c")
    agent = Participant("agent1", Role.AGENT, "l2", "a")
    sup = Participant("supervisor1", Role.SUPERVISOR, "l3", "s", mode=SupervisorMode.MONITOR)
    other_sup = Participant("supervisor2", Role.SUPERVISOR, "l4", "s2", mode=SupervisorMode.MONITOR)
    policy.may_act_on(cust, cust, "mute", True)  # oneself
    policy.may_act_on(agent, cust, "hold", True)  # the agent holds a party
    assert "barging" in refused(403, policy.may_act_on, sup, cust, "mute", True)
    assert refused(403, policy.may_act_on, cust, agent, "mute", True) == "you can only mute yourself"  # no "supervisor"
    assert "barging" in refused(403, policy.may_act_on, agent, cust, "mute", True)
    sup.mode = SupervisorMode.BARGE
    policy.may_act_on(sup, cust, "mute", True)
    policy.may_act_on(sup, cust, "drop", True)
    refused(403, policy.may_act_on, sup, other_sup, "mute", True)
    assert "agent cannot be dropped" in refused(403, policy.may_act_on, sup, agent, "drop", True)
    refused(400, policy.may_act_on, sup, sup, "drop", True)
    cust.muted_by = "supervisor2"  # another supervisor's mute is theirs to release
    assert "only they can release" in refused(403, policy.may_act_on, sup, cust, "mute", False)
    told = refused(403, policy.may_act_on, cust, cust, "mute", False)
    assert "cannot unmute" in told and "supervisor" not in told  # a customer never learns of supervisors
    cust.held_by = "agent1"
    assert "only they can release" in refused(403, policy.may_act_on, sup, cust, "hold", False)
    policy.may_act_on(agent, cust, "hold", False)
    agent.muted_by = "supervisor1"
    assert "supervisor1: only they can unmute" in refused(403, policy.may_act_on, agent, agent, "mute", False)


def test_refer() -> None:
    c = call()
    agent, cust = c.participants["agent1"], c.participants["customer1"]
    online = {"customer2": "x", "customer3": "y"}
    limits = CallLimits()
    assert policy.may_refer(agent, DIR.user("customer2"), "customer2", online, {}, c, limits).name == "customer2"
    refused(403, policy.may_refer, cust, DIR.user("customer2"), "customer2", online, {}, c, limits)
    refused(404, policy.may_refer, agent, None, "ghost", online, {}, c, limits)
    refused(404, policy.may_refer, agent, DIR.user("supervisor1"), "supervisor1", online, {}, c, limits)
    refused(480, policy.may_refer, agent, DIR.user("customer4"), "customer4", online, {}, c, limits)
    refused(486, policy.may_refer, agent, DIR.user("customer3"), "customer3", online, {"customer3": "call-2"}, c,
            limits)
    assert "party limit" in refused(486, policy.may_refer, agent, DIR.user("customer2"), "customer2", online, {},
                                    c, CallLimits(max_parties=2))


def test_cancel() -> None:
    refused(481, policy.may_cancel, None, "call-1", "customer1")
    refused(481, policy.may_cancel, call(CallState.RINGING), "call-1", "customer2")
    assert "use BYE" in refused(481, policy.may_cancel, call(), "call-1", "customer1")
    policy.may_cancel(call(CallState.RINGING), "call-1", "customer1")
