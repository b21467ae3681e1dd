"""Who a leg is in a call, and how a supervisor is attached."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    CUSTOMER = "customer"
    AGENT = "agent"
    PARTY = "party"  # any other party: a conferenced third party, a transfer target, ...
    SUPERVISOR = "supervisor"


class SupervisorMode(StrEnum):
    MONITOR = "monitor"  # hears everyone, heard by nobody
    BARGE = "barge"  # hears everyone, heard by everyone
    COACH = "coach"  # hears everyone, heard by the agent only (whisper)

