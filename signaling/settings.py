"""Server settings: defaults, an optional TOML file, then ``BARGEIN_*`` environment variables.

Nested fields use ``__``: ``BARGEIN_LIMITS__MAX_PARTIES=4``, ``BARGEIN_QUEUES='{"sales": {"monitoring_allowed": false}}'``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from bargein.mixer.limits import CallLimits
from bargein.mixer.realtime import RealtimePolicy
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class QueueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monitoring_allowed: bool = Field(True, description="the flow lets supervisors monitor (and barge into) its calls")
    agents: list[str] | None = Field(None, description="who takes this queue's calls (None: any agent)")
    record: Literal["none", "agent", "customer", "both"] = Field(
        "both", description="which side of its calls is recorded, whatever monitoring allows (docs/records.md)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BARGEIN_", env_nested_delimiter="__", extra="forbid")

    host: str = Field("127.0.0.1", description="address to bind (keep 127.0.0.1 unless behind a proxy)")
    port: int = Field(8080, ge=0, le=65535, description="TCP port of the web client, /ws and /api")
    mixer_rate: int = Field(48000, description="mixer sample rate in Hz: 8000, 16000 or 48000")
    mixer_threads: int = Field(1, ge=1, le=64, description="threads one mixer tick is split over (the in-process "
                               "mixer; large pools only)")
    mixer_rt_priority: int = Field(
        40, ge=0, le=99, description="SCHED_FIFO priority of the in-process mixer's clock and mix threads, as audio "
        "servers run theirs (0: ordinary threads); without the permission (root or CAP_SYS_NICE) they stay ordinary "
        "threads and a warning is logged")
    mixer_cpus: list[int] = Field(default_factory=list, description="pin the mixer's threads, one each in turn, to "
                                  "these CPUs (empty: no pinning)")
    limits: CallLimits = Field(CallLimits(), description="per-call limits")
    enhanced_monitoring: bool = Field(True, description="off: silent monitoring still works, barge and coach are refused")
    queues: dict[str, QueueSettings] = Field(
        {"support": QueueSettings(), "sales": QueueSettings()},
        description='queues as JSON, e.g. {"sales": {"monitoring_allowed": false, "agents": ["agent1"]}}')
    default_queue: str = Field("support", description="the queue clients offer first (sent in the REGISTER response)")
    users_file: Path | None = Field(None, description="users and security profiles (TOML or JSON); default: demo users")
    max_chats_per_agent: int = Field(3, ge=1, le=50, description="live chats one agent holds at once (besides a call)")
    ring_timeout_s: float = Field(20.0, gt=0, description="an unanswered INVITE to an agent times out (408)")
    max_requests_per_second: float = Field(
        50.0, gt=0, description="per connection, and per user across its connections; more get 429")
    max_requests_per_second_per_address: float = Field(
        1000.0, gt=0, description="per remote address across all its connections; more get 429")
    failed_signins_per_minute: float = Field(
        30.0, gt=0, description="wrong-token REGISTERs per remote address; past the burst, more get 429")
    failed_signins_burst: float = Field(10.0, ge=1, description="wrong-token REGISTERs allowed in a row")
    max_connections: int = Field(1000, ge=1, description="open signaling connections; more are refused")
    data_dir: Path = Field(Path("bargein-data"), description="contact records, recordings, transcripts")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default SQLite in data_dir (a cluster: postgresql+psycopg://...)")
    recordings_dir: Path | None = Field(
        None, description="call recordings; default data_dir/recordings (a cluster: shared storage, so any node "
        "serves them)")
    transcripts_dir: Path | None = Field(
        None, description="chat transcripts; default data_dir/transcripts (a cluster: shared, like recordings_dir)")
    retention_days: float | None = Field(90.0, gt=0, description="older contacts and their files are deleted")
    allowed_origins: list[str] = Field(
        default_factory=list, description="browser origins allowed to open /ws besides the server's own ('*': any)")
    signin_timeout_s: float = Field(5.0, gt=0, description="a connection that has not signed in by then is closed")
    max_unauthenticated_per_address: int = Field(50, ge=1, description="connections not yet signed in, per address")
    reserved_for_signed_in: int = Field(
        100, ge=0, description="connections kept free for users who sign in (unauthenticated ones may not take them)")
    media_workers: int | None = Field(None, ge=0, description="media worker processes (None: one per core; "
                                      "0: media in the signaling process)")
    media_worker_timeout_s: float = Field(5.0, gt=2.0, description="a media worker silent this long (hung: stopped, "
                                          "or its event loop stuck) is killed and replaced; its calls end")
    load_users: int = Field(0, ge=0, description="generate N test agents, customers and supervisors (load tests)")
    redis_url: str | None = Field(None, description="redis://HOST:PORT/DB: run as one node of a cluster "
                                  "(docs/architecture.md, Cluster); unset: one embedded server")
    node_id: str | None = Field(None, description="this node's name in a cluster (default HOST:PORT)")
    public_url: str | None = Field(None, description="how other nodes reach this node's HTTP API "
                                   "(default http://HOST:PORT)")
    drain_grace_s: float = Field(300.0, gt=0, description="after SIGTERM a cluster node takes no new calls and "
                                 "exits when its calls end, or after this many seconds")

    @property
    def mixer_realtime(self) -> RealtimePolicy:
        return RealtimePolicy(priority=self.mixer_rt_priority, cpus=tuple(self.mixer_cpus))


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Defaults < TOML file < environment < explicit overrides (CLI flags)."""
    base: dict[str, Any] = {}
    if config_file is not None:
        base = tomllib.loads(Path(config_file).read_text())
    env = Settings()  # environment only
    merged = {**base, **env.model_dump(exclude_unset=True), **{k: v for k, v in overrides.items() if v is not None}}
    return Settings.model_validate(merged)


def environment_variables() -> list[tuple[str, str]]:
    """``(BARGEIN_* name, what it sets)`` for every setting, nested models spelled with ``__``."""
    rows: list[tuple[str, str]] = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            env = f"{prefix}{name.upper()}"
            kind = field.annotation
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                walk(kind, env + "__")
                continue
            default = field.get_default(call_default_factory=True)
            shown = "" if isinstance(default, (dict, BaseModel)) or default is None else f" (default {default})"
            rows.append((env, f"{field.description or name.replace('_', ' ')}{shown}"))

    walk(Settings, "BARGEIN_")
    return rows
