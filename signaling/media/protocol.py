"""Messages between the signaling process and its media workers.

Every message is a plain JSON object (a pydantic model with a ``type`` tag) that names the media
worker it is for or from (``worker``), so the same models can travel over any transport: today a
local socket with length-prefixed frames (:func:`encode` / :class:`FrameReader`), later a network
bus. Legs and calls are named by the signaling core's ids (``leg-7``, ``call-3``); the mixer leg ids
of a worker never leave it.

Signaling -> worker: :class:`AddLeg`, :class:`UpdateLeg`, :class:`RemoveLeg`, :class:`MeterCall`, :class:`Offer`,
:class:`StatsRequest`, :class:`StartRecording`, :class:`StopRecording`, :class:`Shutdown`.
Worker -> signaling: :class:`Hello` (ready), :class:`Answer` / :class:`Refused` (to an offer),
:class:`LegLost` (a peer vanished, or the mixer refused the leg), :class:`LegLevels`, :class:`RecordingFailed`,
:class:`Stats`.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Annotated, Literal

from bargein.mixer.limits import CallLimits
from bargein.mixer.roles import Role, SupervisorMode
from bargein.mixer.routing import LegRouting
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

MAX_FRAME = 1 << 20  # an SDP is a few kB; anything near this is a broken peer
_HEADER = struct.Struct(">I")


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    worker: str  # the media worker (node) the message is for or from


class _LegMessage(_Message):
    """About one leg of a call (the signaling core's ids)."""

    call_id: str
    leg: str


class _Reply(_Message):
    """A worker's reply to an :class:`Offer` (``request`` is the offer's)."""

    request: int
    leg: str


class Routing(BaseModel):
    """A leg's place in its call, as JSON (the mixer's :class:`LegRouting`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    mode: SupervisorMode | None = None
    muted: bool = False
    held: bool = False
    gain: float = 1.0

    @classmethod
    def of(cls, r: LegRouting) -> Routing:
        return cls(role=r.role, mode=r.mode, muted=r.muted, held=r.held, gain=r.gain)

    def to_mixer(self) -> LegRouting:
        return LegRouting(self.role, self.mode, muted=self.muted, held=self.held, gain=self.gain)


class WorkerConfig(BaseModel):
    """What a worker needs to start (given on its command line)."""

    model_config = ConfigDict(extra="forbid")

    worker: str
    mixer_rate: int = 48000
    limits: CallLimits = CallLimits()
    silent_peer_s: float = 5.0
    connect_grace_s: float = 20.0
    stats_every_s: float = 1.0
    loop: Literal["uvloop", "asyncio"] = "uvloop"  # asyncio: for comparison (uvloop is used when installed)
    encode_inline: bool = True  # shared Opus encode on the worker's loop rather than a thread


# ------------------------------------------------------------------ signaling -> worker
class AddLeg(_LegMessage):
    type: Literal["add_leg"] = "add_leg"
    routing: Routing


class UpdateLeg(_LegMessage):
    type: Literal["update_leg"] = "update_leg"
    routing: Routing


class RemoveLeg(_LegMessage):
    type: Literal["remove_leg"] = "remove_leg"


class MeterCall(_Message):
    """Measure who talks on the call (``on``) or stop: the worker reports :class:`LegLevels` ~5 times a second."""

    type: Literal["meter_call"] = "meter_call"
    call_id: str
    on: bool


class Offer(_LegMessage):
    """Open the leg's media with this SDP offer; answered by :class:`Answer` or :class:`Refused`."""

    type: Literal["offer"] = "offer"
    request: int
    sdp: str


class StatsRequest(_Message):
    type: Literal["stats_request"] = "stats_request"
    request: int
    per_leg: bool = False  # also each leg's frames received from its peer


class StartRecording(_Message):
    """Record the call into ``path`` (the worker's mixer tap and writer thread; docs/records.md)."""

    type: Literal["start_recording"] = "start_recording"
    call_id: str
    rec_id: int = Field(ge=0)
    path: str
    channels: tuple[bool, bool] = (True, True)  # (left: contact center's side, right: caller's side)


class StopRecording(_Message):
    type: Literal["stop_recording"] = "stop_recording"
    call_id: str
    rec_id: int


class Shutdown(_Message):
    type: Literal["shutdown"] = "shutdown"


# ------------------------------------------------------------------ worker -> signaling
class Hello(_Message):
    type: Literal["hello"] = "hello"
    pid: int
    loop: str  # "uvloop" or "asyncio"


class Answer(_Reply):
    type: Literal["answer"] = "answer"
    sdp: str


class Refused(_Reply):
    type: Literal["refused"] = "refused"
    reason: str


class LegLost(_LegMessage):
    type: Literal["leg_lost"] = "leg_lost"
    reason: str


class LegLevels(_Message):
    """One level window of the metered calls: ``calls[call_id][leg]`` is the leg's loudest 20 ms RMS (0..1)."""

    type: Literal["leg_levels"] = "leg_levels"
    calls: dict[str, dict[str, Annotated[float, Field(ge=0.0, le=1.0)]]]


class RecordingFailed(_Message):
    """A recording stopped early (or never started); the call goes on."""

    type: Literal["recording_failed"] = "recording_failed"
    rec_id: int
    reason: str


class Stats(_Message):
    """A worker's totals since it started (the signaling side sums workers)."""

    type: Literal["stats"] = "stats"
    request: int | None = None  # set when answering a StatsRequest; None when pushed
    pid: int
    calls: int
    legs: int
    media_legs: int
    ticks: int
    deadline_misses: int
    skipped_ticks: int
    tick_ms_p50: float
    tick_ms_p99: float
    tick_ms_max: float
    frames_missing: int
    frames_dropped: int
    frames_pushed: int
    legs_lost: int
    cpu_s: float  # user + system CPU of the worker process
    frames_in: dict[str, int] | None = None  # per leg (core leg id), when asked for
    inbound: dict[str, int] = {}  # the legs' inbound buffer counters (received, played, concealed, ...)


ToWorker = Annotated[AddLeg | UpdateLeg | RemoveLeg | MeterCall | Offer | StatsRequest | StartRecording | StopRecording
                     | Shutdown, Field(discriminator="type")]
FromWorkerMessage = Hello | Answer | Refused | LegLost | LegLevels | RecordingFailed | Stats  # a cluster adds its own
FromWorker = Annotated[FromWorkerMessage, Field(discriminator="type")]
TO_WORKER: TypeAdapter[ToWorker] = TypeAdapter(ToWorker)
FROM_WORKER: TypeAdapter[FromWorker] = TypeAdapter(FromWorker)


# ------------------------------------------------------------------ local transport framing
class FrameError(Exception):
    """The byte stream is not a sequence of frames (a broken or hostile peer)."""


def encode(msg: _Message) -> bytes:
    body = msg.model_dump_json().encode()
    return _HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """One frame's JSON bytes; ``None`` at a clean end of stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise FrameError("stream ended inside a frame header") from exc
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise FrameError(f"frame of {size} bytes exceeds {MAX_FRAME}")
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise FrameError("stream ended inside a frame") from exc
