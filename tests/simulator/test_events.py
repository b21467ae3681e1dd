"""The event schedule and the simulation's dispatch table."""

import typing

from bargein.simulator.control import DirectControl
from bargein.simulator.events import Arrival, Event, Hangup, Schedule, SupervisorIdle
from bargein.simulator.sim import Simulation


def test_schedule_orders_by_tick_then_by_scheduling_order():
    s = Schedule()
    s.at(5, SupervisorIdle("b"))
    s.at(3, Arrival())
    s.at(5, SupervisorIdle("a"))
    s.at(9, Hangup(0, 1, "agent"))
    assert list(s.due(2)) == []
    assert list(s.due(5)) == [Arrival(), SupervisorIdle("b"), SupervisorIdle("a")]
    assert len(s) == 1


def test_events_scheduled_for_now_while_popping_are_popped_too():
    s = Schedule()
    s.at(1, Arrival())
    seen = []
    for e in s.due(1):
        seen.append(e)
        if len(seen) == 1:
            s.at(1, SupervisorIdle("x"))
            s.at(2, SupervisorIdle("later"))
    assert seen == [Arrival(), SupervisorIdle("x")]
    assert list(s.due(2)) == [SupervisorIdle("later")]


def test_every_event_kind_has_a_handler(busy):
    sim = Simulation(busy(), control=DirectControl)
    assert set(sim._handlers) == set(typing.get_args(Event))
