"""What a simulation runs: a pydantic model, loadable from TOML or JSON, or built from CLI flags.

Every section forbids unknown fields, so a typo in a scenario file is refused with a message that
names the field (``ScenarioError``), never silently ignored.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any, Literal

from bargein.mixer.limits import CallLimits
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ScenarioError(ValueError):
    """A scenario file or value is invalid; the message names the file and the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HandleTime(_Section):
    """How long a call lasts from answer to hang-up (seconds)."""

    distribution: Literal["exponential", "lognormal", "uniform", "fixed"] = "exponential"
    mean_s: float = Field(120.0, gt=0, description="mean handle time")
    sigma: float = Field(0.6, gt=0, description="lognormal shape (std of the log)")
    min_s: float = Field(5.0, ge=0, description="no call is shorter than this")
    max_s: float | None = Field(None, gt=0, description="no call is longer than this (uniform: upper bound)")


class Supervision(_Section):
    """How supervisors pick calls and what they do there.

    A free supervisor starts monitoring a random live call after an exponential idle time; while on a call
    it acts every ``action_interval_s`` (exponential) with the probabilities below (normalised).
    """

    idle_mean_s: float = Field(5.0, gt=0, description="mean time a free supervisor waits before monitoring")
    action_interval_s: float = Field(6.0, gt=0, description="mean time between a supervisor's actions")
    barge_weight: float = Field(1.0, ge=0)
    coach_weight: float = Field(1.0, ge=0)
    monitor_weight: float = Field(1.0, ge=0, description="back to silent monitoring")
    leave_weight: float = Field(0.7, ge=0)
    mute_party_weight: float = Field(0.2, ge=0, description="while barging: mute/unmute a party")


class Parties(_Section):
    """What the parties of a call do besides talking."""

    agent_hangup_probability: float = Field(0.5, ge=0, le=1, description="else the customer hangs up")
    mute_per_min: float = Field(0.5, ge=0, description="self-mutes per party-minute (agent or customer)")
    mute_mean_s: float = Field(3.0, gt=0)
    hold_per_min: float = Field(0.3, ge=0, description="holds per call-minute (the agent holds the customer)")
    hold_mean_s: float = Field(5.0, gt=0)
    third_party_per_min: float = Field(0.2, ge=0, description="third parties added per call-minute")
    third_party_mean_s: float = Field(20.0, gt=0, description="how long a third party stays")


class Voices(_Section):
    """Synthetic voices: one tone per leg (unique within its call), with talk and silence spurts."""

    amplitude: float = Field(0.05, gt=0, le=0.12, description="tone level, fraction of full scale")
    talk_mean_s: float = Field(1.2, gt=0)
    silence_mean_s: float = Field(0.8, gt=0)


class Chats(_Section):
    """Chat contacts beside the calls (off when ``arrival_per_min`` is 0)."""

    arrival_per_min: float = Field(0.0, ge=0, description="new chats per simulated minute (0: no chats)")
    messages_per_min: float = Field(6.0, gt=0, description="messages per chat-minute (customer and agent together)")
    mean_duration_s: float = Field(120.0, gt=0, description="mean time from accept to the end of a chat")
    agents: int = Field(4, ge=1, description="agents taking chats")
    max_chats_per_agent: int = Field(3, ge=1)
    supervisors: int = Field(2, ge=0)
    monitor_probability: float = Field(0.5, ge=0, le=1, description="a chat gets a monitoring supervisor")
    barge_probability: float = Field(0.5, ge=0, le=1, description="a monitoring supervisor barges and writes")


class Verification(_Section):
    """Which ticks and listeners are checked against the routing table."""

    every_ticks: int = Field(10, ge=1, description="each listener is checked every n-th tick (spread over ticks)")
    max_listeners: int = Field(
        2000, ge=1, description="at most this many listeners per n ticks (a random sample at scale)")
    max_listed: int = Field(100, ge=0, description="violations listed in the report (all are counted)")


class Scenario(_Section):
    """A simulation: how many calls, for how long, what everybody does, and the seed."""

    calls: int = Field(100, ge=1, description="target number of concurrent calls")
    duration_s: float = Field(60.0, gt=0, description="simulated time")
    seed: int = 1
    clock: Literal["virtual", "realtime"] = "virtual"
    rate: Literal[8000, 16000, 48000] = 48000
    agents: int | None = Field(None, ge=1, description="default: enough for the target (calls x 1.25 + 4)")
    supervisors: int | None = Field(None, ge=0, description="default: one per 20 target calls, at least 2")
    arrival_rate_per_s: float | None = Field(
        None, gt=0, description="Poisson arrivals; default: calls / mean handle time (Little's law)")
    warm_start: bool = Field(True, description="start with the target number of calls already in progress")
    handle_time: HandleTime = HandleTime()
    supervision: Supervision = Supervision()
    parties: Parties = Parties()
    voices: Voices = Voices()
    verification: Verification = Verification()
    chats: Chats = Chats()
    limits: CallLimits = CallLimits()
    buffer_frames: int = Field(2, ge=1, le=64, description="mixer input buffer per leg")
    server: str | None = Field(None, description="ws:// URL of a running `bargein serve` (else in-process); "
                               "comma-separated URLs of a cluster's nodes spread the connections over them")
    webrtc_calls: int = Field(0, ge=0, description="server path: calls whose legs carry audio over WebRTC")

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.webrtc_calls and not self.server:
            raise ValueError("webrtc_calls needs server (WebRTC legs only exist against a running server)")
        for url in self.server_urls:
            if not url.startswith(("ws://", "wss://")):
                raise ValueError(f"server must be ws:// or wss:// URLs (comma-separated), got {url!r}")
        return self

    @property
    def server_urls(self) -> list[str]:
        """The server's URL, or each node's of a cluster (``server`` is comma-separated)."""
        return [u.strip() for u in (self.server or "").split(",") if u.strip()]

    @property
    def agent_count(self) -> int:
        return self.agents if self.agents is not None else int(math.ceil(self.calls * 1.25)) + 4

    @property
    def supervisor_count(self) -> int:
        return self.supervisors if self.supervisors is not None else max(2, self.calls // 20)

    @property
    def arrival_rate(self) -> float:
        """Arrivals per second; Little's law keeps ``calls`` in progress on average."""
        return self.arrival_rate_per_s or self.calls / self.handle_time.mean_s

    @property
    def ticks(self) -> int:
        return int(round(self.duration_s / 0.02))


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid scenario {source}:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {where}: unknown field (not a scenario setting)")
        else:
            lines.append(f"  {where}: {e['msg']}")
    return "\n".join(lines)


def build_scenario(data: dict[str, Any], source: str = "(values)") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(_format_errors(err, source)) from None


def load_scenario(path: str | Path, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read a ``.toml`` or ``.json`` scenario; ``overrides`` (e.g. CLI flags) win over the file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as err:
        raise ScenarioError(f"cannot read scenario {p}: {err.strerror}") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode())
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ScenarioError(f"invalid scenario {p}: not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {err}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"invalid scenario {p}: expected a table/object at the top level")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return build_scenario(data, str(p))
