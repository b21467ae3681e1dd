"""Agent choice: longest idle first, only agents who staff the queue, never the same agent twice for a call."""

from bargein.signaling.acd import Acd
from bargein.signaling.directory import demo_directory
from bargein.signaling.model import Availability, Call
from bargein.signaling.settings import QueueSettings, Settings


def call(queue: str = "support") -> Call:
    return Call("call-1", queue, "customer1", "conn-c", 1, 0.0)


def available(acd: Acd, *names: str) -> None:
    for name in names:
        acd.publish(name, "available", 0.0)
        acd.refresh(name, free=True)


def test_longest_idle_first_and_back_of_the_line_after_a_call() -> None:
    acd = Acd(Settings(), demo_directory())
    available(acd, "agent3", "agent1", "agent2")
    assert acd.idle() == ["agent3", "agent1", "agent2"]
    c = call()
    assert acd.pick(c) == "agent3"
    acd.ring(c, "agent3")
    acd.refresh("agent3", free=False)  # on the call
    assert acd.pick(call()) == "agent1"
    acd.agents["agent3"].call_id = None
    acd.refresh("agent3", free=True)  # the call ended: agent3 waited least
    assert acd.idle() == ["agent1", "agent2", "agent3"]


def test_a_call_is_never_offered_twice_to_the_same_agent() -> None:
    acd = Acd(Settings(), demo_directory())
    available(acd, "agent1", "agent2")
    c = call()
    acd.ring(c, "agent1")
    acd.agents["agent1"].call_id = None  # declined
    assert acd.pick(c) == "agent2"
    c.tried_agents.add("agent2")
    assert acd.pick(c) is None


def test_only_agents_who_staff_the_queue() -> None:
    settings = Settings(queues={"support": QueueSettings(), "vip": QueueSettings(agents=["agent2"])})
    acd = Acd(settings, demo_directory())
    available(acd, "agent1", "agent2")
    assert acd.pick(call("vip")) == "agent2"
    assert acd.pick(call("support")) == "agent1"


def test_away_signed_out_or_busy_agents_are_not_idle() -> None:
    acd = Acd(Settings(), demo_directory())
    available(acd, "agent1", "agent2", "agent3")
    acd.publish("agent1", "away", 1.0)
    acd.refresh("agent1", free=True)
    acd.signed_out("agent2")
    acd.refresh("agent3", free=False)
    assert acd.idle() == [] and acd.pick(call()) is None
    assert acd.agents["agent1"].state is Availability.AWAY and acd.agents["agent2"].state is Availability.OFFLINE
