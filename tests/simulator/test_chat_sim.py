"""Chat contacts in the simulator: routed through the real signaling core, checked frame by frame."""

from bargein.signaling import chat
from bargein.simulator.chat_sim import ChatSimulation
from bargein.simulator.scenario import Chats, build_scenario
from bargein.simulator.sim import Simulation

BUSY = Chats(arrival_per_min=30, agents=12, supervisors=4, messages_per_min=12, mean_duration_s=60, monitor_probability=0.8,
             barge_probability=0.7)


def test_chats_run_clean_with_monitoring_and_barging() -> None:
    r = ChatSimulation(BUSY, duration_s=600, seed=3).run()
    assert r.violations == 0, r.violation_examples
    assert r.chats_started > 100 and r.chats_completed > 100
    assert r.messages > 500 and r.supervisor_joins > 20 and r.barged_messages > 10 and r.chats_refused < r.chats_started


def test_the_checker_catches_a_supervisor_name_reaching_customers(monkeypatch) -> None:
    # the fault: customers get the agents' view of a message (with the supervisor's name)
    monkeypatch.setattr(chat.ChatEntry, "for_customer", chat.ChatEntry.full)
    r = ChatSimulation(BUSY, duration_s=600, seed=3).run()
    assert r.barged_messages > 0 and r.violations >= r.barged_messages
    assert any("supervisor's name" in v for v in r.violation_examples)


def test_the_checker_catches_lost_live_messages(monkeypatch) -> None:
    # the fault: the fan-out forgets supervisors
    real = chat.ChatDesk._fan_out

    def no_supervisors(self, c, entry, skip):
        return [a for a in real(self, c, entry, skip)
                if not a.conn.startswith("chat-chat-sup")]
    monkeypatch.setattr(chat.ChatDesk, "_fan_out", no_supervisors)
    r = ChatSimulation(BUSY, duration_s=600, seed=3).run()
    assert any("missed messages" in v for v in r.violation_examples)


def test_scenario_chats_reach_the_report() -> None:
    sc = build_scenario({"calls": 4, "duration_s": 2.0, "chats": {"arrival_per_min": 60, "mean_duration_s": 1.0}})
    r = Simulation(sc).run()
    assert r.chats["chats_started"] > 0 and r.chats["violations"] == 0
    assert r.ok
