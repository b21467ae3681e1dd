"""Batched numpy conference mixer: routing, limits, engine and clocks."""

from .clock import RealtimeClock, TickStats, VirtualClock
from .engine import MixerCounters, MixerEngine, OutputGather, ShareTiming, UnknownCallError, UnknownLegError
from .frames import FRAME_MS, SUPPORTED_RATES, FrameError, samples_per_frame
from .limits import CallLimits, LimitError
from .realtime import RealtimePolicy
from .roles import Role, SupervisorMode
from .routing import LegRouting, hears, route

__all__ = [
    "FRAME_MS",
    "SUPPORTED_RATES",
    "CallLimits",
    "FrameError",
    "LegRouting",
    "LimitError",
    "MixerCounters",
    "MixerEngine",
    "OutputGather",
    "RealtimeClock",
    "RealtimePolicy",
    "Role",
    "ShareTiming",
    "SupervisorMode",
    "TickStats",
    "UnknownCallError",
    "UnknownLegError",
    "VirtualClock",
    "hears",
    "route",
    "samples_per_frame",
]
