"""Event-driven contact-center simulator with routing verification (in-process or against a server)."""

from .report import Report
from .scenario import Scenario, ScenarioError, build_scenario, load_scenario
from .sim import Simulation

__all__ = ["Report", "Scenario", "ScenarioError", "Simulation", "build_scenario", "load_scenario"]
