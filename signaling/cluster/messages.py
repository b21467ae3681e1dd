"""What nodes say to each other over Redis pub/sub: pydantic models, one JSON object per message.

Signaling relay (``bargein:signal:<node>``): an edge node tells the leader a socket opened
(:class:`Opened`), sent a frame (:class:`Frame`) or closed (:class:`Closed`); the leader answers with
frames for it (:class:`Deliver`) and closes it (:class:`Close`); a leader that took over tells each
edge which of its sessions it kept (:class:`Adopted`).

Media (``bargein:media:<node>`` and ``bargein:media-reply:<leader>``): the media worker messages of
:mod:`bargein.signaling.media.protocol`, unchanged, inside an envelope naming the leader or the node,
plus :class:`CallsLost` (a media worker of that node died with these calls).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from ..media import protocol as p


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------ signaling relay
class Opened(_Message):
    """A client's socket opened on ``node`` (the edge); ``conn`` is unique in the cluster."""

    type: Literal["opened"] = "opened"
    node: str
    conn: str
    remote: str  # the client's address: the leader's per-address limits key on it


class Frame(_Message):
    type: Literal["frame"] = "frame"
    node: str
    conn: str
    data: str


class Closed(_Message):
    type: Literal["closed"] = "closed"
    node: str
    conn: str


class Deliver(_Message):
    """A frame from the leader for the client's socket; ``signed_in``: the connection has signed in."""

    type: Literal["deliver"] = "deliver"
    conn: str
    message: dict[str, Any]
    signed_in: bool = False


class Close(_Message):
    """The leader ended the connection (e.g. signed in elsewhere): the edge closes the socket."""

    type: Literal["close"] = "close"
    conn: str
    reason: str


class Adopted(_Message):
    """A new leader took over: of this edge's sessions, it kept ``conns`` (from its predecessor's
    snapshot); the edge sends their frames to it and closes its other sessions, with ``reason``."""

    type: Literal["adopted"] = "adopted"
    leader: str
    conns: list[str]
    reason: str


Signal = Annotated[Opened | Frame | Closed | Deliver | Close | Adopted, Field(discriminator="type")]
SIGNAL: TypeAdapter[Signal] = TypeAdapter(Signal)


# ------------------------------------------------------------------ media
class ToNode(_Message):
    """A leg message from the leader to the node hosting the call (``message.worker`` is that node)."""

    leader: str
    message: p.ToWorker


class CallsLost(_Message):
    """The node's media worker died: these calls lost their media."""

    type: Literal["calls_lost"] = "calls_lost"
    worker: str
    call_ids: list[str]
    reason: str


class FromNode(_Message):
    node: str
    message: Annotated[p.FromWorkerMessage | CallsLost, Field(discriminator="type")]  # a worker's, unchanged


TO_NODE: TypeAdapter[ToNode] = TypeAdapter(ToNode)
FROM_NODE: TypeAdapter[FromNode] = TypeAdapter(FromNode)
