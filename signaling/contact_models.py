"""What a persistent contact record and a monitor session look like, and how contacts are searched.

These pydantic models are the store's rows and the REST API's JSON (times are seconds since the epoch).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Channel = Literal["voice", "chat"]
RecordSides = Literal["none", "agent", "customer", "both"]


def new_id(now: float) -> str:
    """A unique id that sorts by time (newest first is descending id): ms since the epoch + random."""
    return f"{int(now * 1000):013d}-{secrets.token_hex(3)}"


class ModeChange(BaseModel):
    at: float
    mode: str
    by: str


class MonitorSession(BaseModel):
    session_id: str
    contact_id: str
    supervisor: str
    started: float
    initial_mode: str
    mode_changes: list[ModeChange] = []
    ended: float | None = None
    end_reason: str | None = None


class Contact(BaseModel):
    contact_id: str
    call_id: str  # the live call's id (reused after a restart; contact_id is not)
    channel: Channel = "voice"
    queue: str
    customer: str
    agent: str | None = None
    parties: list[str] = []  # other parties (conference, transfer)
    initiated: float
    connected: float | None = None
    disconnected: float | None = None
    disconnect_reason: str | None = None
    ended_by: str | None = None
    recording_path: str | None = None  # "recordings/<id>.ogg": under the node's recordings_dir
    transcript_path: str | None = None
    recording_error: str | None = None


class ContactQuery(BaseModel):
    """``GET /api/contacts`` query parameters (``from``/``to``: epoch seconds or ISO 8601, on ``initiated``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    channel: Channel | None = None
    queue: str | None = None
    agent: str | None = None
    from_: float | None = Field(None, alias="from")
    to: float | None = None
    limit: int = Field(50, ge=1, le=500)
    cursor: str | None = Field(None, pattern=r"^\d{13}-[0-9a-f]{6}$")

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _time(cls, v: object) -> object:
        if isinstance(v, str) and v and not v.replace(".", "", 1).isdigit():
            try:
                return datetime.fromisoformat(v).timestamp()
            except ValueError:
                raise ValueError("expected seconds since the epoch or an ISO 8601 time") from None
        return v
