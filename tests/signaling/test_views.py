"""The agents and calls views, call-state NOTIFYs and the subscription fan-out."""

from bargein.mixer.roles import Role, SupervisorMode
from bargein.signaling import views
from bargein.signaling.actions import Send
from bargein.signaling.directory import demo_directory
from bargein.signaling.model import AgentStatus, Availability, Call, CallState, Connection, Participant
from bargein.signaling.ratelimit import TokenBucket
from bargein.signaling.settings import Settings


def conn(name: str) -> Connection:
    return Connection(name, TokenBucket(1, 1, 0.0))


def active_call() -> Call:
    c = Call("call-1", "support", "customer1", "c-cust", 1, 0.0, state=CallState.ACTIVE, agent="agent1",
             answered=10.0)
    for p in (Participant("customer1", Role.CUSTOMER, "leg-1", "c-cust"),
              Participant("agent1", Role.AGENT, "leg-2", "c-agent"),
              Participant("supervisor1", Role.SUPERVISOR, "leg-3", "c-sup", mode=SupervisorMode.COACH)):
        c.participants[p.user] = p
    return c


def test_natural_order_puts_agent2_before_agent10() -> None:
    assert sorted(["agent10", "agent2", "agent1"], key=views.natural) == ["agent1", "agent2", "agent10"]


def test_call_state_hides_supervisors_from_the_customer_only() -> None:
    conns = {c: conn(c) for c in ("c-cust", "c-agent", "c-sup")}
    sent = {a.conn: a.message for a in views.call_state(active_call(), conns) if isinstance(a, Send)}
    assert [p["user"] for p in sent["c-cust"]["participants"]] == ["customer1", "agent1"]
    assert "supervisors" not in sent["c-cust"]
    for who in ("c-agent", "c-sup"):
        assert sent[who]["supervisors"] == [{"user": "supervisor1", "mode": "coach"}]
        assert len(sent[who]["participants"]) == 3 and sent[who]["state"] == "active"
    del conns["c-sup"]  # a closed connection is skipped
    assert {a.conn for a in views.call_state(active_call(), conns)} == {"c-cust", "c-agent"}


def test_agents_view_states() -> None:
    call = active_call()
    agents = {"agent10": AgentStatus(Availability.AVAILABLE), "agent1": AgentStatus(Availability.AVAILABLE, "call-1"),
              "agent2": AgentStatus(Availability.AWAY), "agent3": AgentStatus(Availability.AVAILABLE)}
    online = {"agent1": "c-agent", "agent2": "x", "agent10": "y"}
    rows = views.agents_view(agents, {"call-1": call}, online, demo_directory(), Settings(), now=14.25)
    by = {r["agent"]: r for r in rows}
    assert [r["agent"] for r in rows] == ["agent1", "agent2", "agent3", "agent10"]
    assert by["agent1"]["state"] == "on-call" and by["agent1"]["call_duration_s"] == 4.2
    assert by["agent1"]["supervisors"] == [{"user": "supervisor1", "mode": "coach"}]
    assert by["agent2"]["state"] == "away" and by["agent3"]["state"] == "offline"
    assert by["agent10"]["state"] == "available" and by["agent10"]["call_id"] is None
    call.state = CallState.RINGING
    rows = views.agents_view(agents, {"call-1": call}, online, demo_directory(), Settings(), now=14.25)
    assert rows[0]["state"] == "ringing"


def test_views_carry_server_timestamps_and_muted_by_never_reaches_the_customer() -> None:
    call = active_call()
    call.participants["customer1"].muted, call.participants["customer1"].muted_by = True, "supervisor1"
    conns = {c: conn(c) for c in ("c-cust", "c-agent", "c-sup")}
    sent = {a.conn: a.message for a in views.call_state(call, conns) if isinstance(a, Send)}
    for who in sent:  # every page reads the same server timestamp, so durations agree between pages
        assert sent[who]["answered_at"] == 10.0 and sent[who]["queue"] == "support"
    assert all("muted_by" not in p for p in sent["c-cust"]["participants"])
    assert "supervisor1" not in str(sent["c-cust"])
    assert sent["c-agent"]["participants"][0]["muted_by"] == "supervisor1"
    agents = {"agent1": AgentStatus(Availability.AVAILABLE, "call-1", since=3.0),
              "agent2": AgentStatus(Availability.AWAY, since=7.5)}
    rows = views.agents_view(agents, {"call-1": call}, {"agent1": "a", "agent2": "b"}, demo_directory(), Settings(),
                             now=20.0)
    by = {r["agent"]: r for r in rows}
    assert by["agent1"]["state_since"] == 10.0 and by["agent1"]["answered_at"] == 10.0  # on a call since answered
    assert by["agent1"]["customer_name"] == "Customer 1"
    assert [p["muted"] for p in by["agent1"]["participants"]][:1] == [True]
    assert by["agent2"]["state_since"] == 7.5 and by["agent2"]["answered_at"] is None
    (row,) = views.calls_view({"call-1": call}, Settings(), now=12.0)
    assert row["created_at"] == 0.0 and row["answered_at"] == 10.0
    reg = views.signed_in(demo_directory().user("agent1"), demo_directory(), Settings(), agents["agent1"], now=42.0)
    assert reg["server_time"] == 42.0


def test_calls_view() -> None:
    (row,) = views.calls_view({"call-1": active_call()}, Settings(), now=12.0)
    assert row["state"] == "active" and row["duration_s"] == 2.0 and row["monitoring_allowed"] is True
    assert [p["role"] for p in row["participants"]] == ["customer", "agent", "supervisor"]


def test_fan_out_builds_each_view_once_and_forgets_closed_connections() -> None:
    subs = views.Subscribers()
    conns = {c: conn(c) for c in ("s1", "s2", "s3")}
    built = {"agents": 0, "calls": 0}

    def view(kind: str):  # noqa: ANN202
        def build() -> list:
            built[kind] += 1
            return [kind]
        return build

    first = subs.add(conns["s1"], "agents", view("agents"))
    assert first.message["event"] == "agents" and first.message["agents"] == ["agents"]
    subs.add(conns["s2"], "agents", view("agents"))
    subs.add(conns["s2"], "calls", view("calls"))
    subs.add(conns["s3"], "calls", view("calls"))
    built.update(agents=0, calls=0)
    out = subs.fan_out(conns, view("agents"), view("calls"))
    assert sorted((a.conn, a.message["event"]) for a in out) == [
        ("s1", "agents"), ("s2", "agents"), ("s2", "calls"), ("s3", "calls")]
    assert built == {"agents": 1, "calls": 1}
    del conns["s2"]
    assert sorted(a.conn for a in subs.fan_out(conns, view("agents"), view("calls"))) == ["s1", "s3"]
    conns["s2"] = conn("s2")  # a new connection with a reused id is not subscribed
    assert sorted(a.conn for a in subs.fan_out(conns, view("agents"), view("calls"))) == ["s1", "s3"]
