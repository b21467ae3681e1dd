"""Wire messages: every request, response and event is a pydantic model.

A frame on the WebSocket is one JSON object. Requests carry ``method``, a ``cseq`` (the sender's
transaction number, echoed in the response) and, in a dialog, a ``call_id``. Responses carry
``status`` and ``reason`` (SIP-style codes) and echo ``cseq`` and ``method``. The server also sends
requests of its own (INVITE to an agent, BYE, NOTIFY) with its own cseq numbers.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from .sdp import OfferRefused, check_offer

MAX_MESSAGE_BYTES = 64 * 1024  # SDP offers are a few kB; anything this large is refused
MAX_SDP = 32 * 1024
MAX_CHAT_TEXT = 4000

REASONS = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    503: "Service Unavailable",
    603: "Decline",
}

Mode = Literal["monitor", "barge", "coach"]
AgentState = Literal["available", "away", "offline"]


class _Msg(BaseModel):
    # strict: a cseq is a JSON integer (not "7", 8.0 or true), a value a JSON boolean (not "yes" or 1)
    model_config = ConfigDict(extra="forbid", str_max_length=MAX_SDP, strict=True)


class _Request(_Msg):
    type: Literal["request"] = "request"
    cseq: int = Field(ge=0, le=2**53)


class Register(_Request):
    """Sign in. Must be the first request on a connection."""

    method: Literal["REGISTER"]
    token: str = Field(min_length=1, max_length=256)


class Publish(_Request):
    """An agent sets its availability."""

    method: Literal["PUBLISH"]
    state: AgentState


class Invite(_Request):
    """Create a leg: ``to`` is ``queue:<name>`` (a customer calls, or chats with ``channel: "chat"``),
    ``call:<call_id>`` / ``chat:<contact_id>`` (a supervisor monitors a live call or chat, ``mode`` says how
    to start) or, from the agent's side, answered by response."""

    method: Literal["INVITE"]
    to: str = Field(min_length=1, max_length=200, pattern=r"^(queue|call|chat):[A-Za-z0-9_.\-]+$")
    channel: Literal["voice", "chat"] = "voice"  # to a queue: a call, or a chat contact (no sdp)
    mode: Mode = "monitor"
    sdp: str | None = None


class Ack(_Request):
    method: Literal["ACK"]
    call_id: str = Field(max_length=100)


class Bye(_Request):
    """Leave or end a call (an agent or customer ends it; a supervisor only leaves)."""

    method: Literal["BYE"]
    call_id: str = Field(max_length=100)


class Cancel(_Request):
    """A customer gives up before an agent answers."""

    method: Literal["CANCEL"]
    call_id: str = Field(max_length=100)


class Info(_Request):
    """In-dialog change. ``action`` = mode (supervisor: monitor/barge/coach), mute (self, or a party while
    barging: ``target``), drop (supervisor while barging: drop ``target``), hold (agent: ``target``)."""

    method: Literal["INFO"]
    call_id: str = Field(max_length=100)
    action: Literal["mode", "mute", "hold", "drop"]
    mode: Mode | None = None
    target: str | None = Field(None, max_length=100)
    value: bool = True


class Refer(_Request):
    """The agent adds a third party (a signed-in user) to its call."""

    method: Literal["REFER"]
    call_id: str = Field(max_length=100)
    target: str = Field(min_length=1, max_length=100)


class ChatMessage(_Request):
    """A chat message (as SIP's RFC 3428 MESSAGE) in the chat ``contact_id``; the server numbers and times it."""

    method: Literal["MESSAGE"]
    contact_id: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=MAX_CHAT_TEXT)


class Subscribe(_Request):
    """``agents`` (the real-time agents view, needs access_metrics) or ``calls``."""

    method: Literal["SUBSCRIBE"]
    event: Literal["agents", "calls"]


class Options(_Request):
    """Keep-alive / capability probe."""

    method: Literal["OPTIONS"]


Request = Annotated[
    Register | Publish | Invite | Ack | Bye | Cancel | Info | Refer | Subscribe | Options | ChatMessage,
    Field(discriminator="method"),
]


class Response(_Msg):
    """A client's answer to a server request (an agent answering INVITE)."""

    type: Literal["response"] = "response"
    cseq: int = Field(ge=0, le=2**53)
    method: Literal["INVITE", "BYE", "NOTIFY", "ACK", "MESSAGE", "CANCEL"]
    status: int = Field(ge=100, le=699)
    reason: str = Field("", max_length=200)
    call_id: str | None = Field(None, max_length=100)
    sdp: str | None = None


Incoming = Annotated[Request | Response, Field(discriminator="type")]
_incoming = TypeAdapter(Incoming)
METHODS = {"REGISTER", "PUBLISH", "INVITE", "ACK", "BYE", "CANCEL", "INFO", "REFER", "SUBSCRIBE", "OPTIONS",
           "MESSAGE"}


class ParseError(ValueError):
    def __init__(self, status: int, reason: str, cseq: int | None = None, method: str | None = None,
                 **fields: Any) -> None:
        super().__init__(reason)
        self.status, self.reason, self.cseq, self.method = status, reason, cseq, method
        self.fields = fields  # extra response fields (405: ``allow``)


_CSEQ = re.compile(rb'"cseq"\s*:\s*(-?\d{1,18})[\s,}]')


def _peek_cseq(raw: str | bytes) -> int | None:
    """The cseq of a frame too large or too broken to parse, when it can be read from its first bytes."""
    head = raw[:4096].encode(errors="replace") if isinstance(raw, str) else raw[:4096]
    found = _CSEQ.search(head)
    return int(found.group(1)) if found else None


def parse(raw: str | bytes | dict[str, Any]) -> Request | Response:
    """Parse one frame; raise ParseError(status, reason naming the problem)."""
    if isinstance(raw, (str, bytes)):
        if len(raw) > MAX_MESSAGE_BYTES:
            raise ParseError(413, f"message is {len(raw)} bytes: at most {MAX_MESSAGE_BYTES}", _peek_cseq(raw))
        try:
            data = json.loads(raw)
        except RecursionError:
            raise ParseError(400, "malformed JSON: nested too deeply", _peek_cseq(raw)) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(400, f"malformed JSON: {exc}", _peek_cseq(raw)) from None
    else:
        data = raw
    if not isinstance(data, dict):
        raise ParseError(400, f"a message must be a JSON object, got {type(data).__name__}")
    cseq = data.get("cseq") if isinstance(data.get("cseq"), int) and not isinstance(data.get("cseq"), bool) else None
    method = data.get("method") if isinstance(data.get("method"), str) else None
    data.setdefault("type", "request")
    if data.get("type") == "request" and method is not None and method not in METHODS:
        raise ParseError(405, f"unknown method {method[:40]!r}: expected one of {', '.join(sorted(METHODS))}",
                         cseq, None, allow=sorted(METHODS))
    try:
        msg = _incoming.validate_python(data)
    except ValidationError as exc:
        raise ParseError(400, describe(exc), cseq, method) from None
    offer = None if isinstance(msg, Response) else getattr(msg, "sdp", None)
    if offer is not None:
        try:  # before any state changes: nothing is rung or allocated for an offer that cannot be served
            check_offer(offer)
        except OfferRefused as exc:
            raise ParseError(488, f"media refused: {exc}", cseq, method) from None
    return msg


def describe(exc: ValidationError) -> str:
    """One line naming each offending field."""
    parts = []
    for err in exc.errors()[:5]:
        loc = [str(p) for p in err["loc"] if p not in ("request", "response")]
        # drop the discriminator tag pydantic puts in the path
        loc = [p for p in loc if p not in METHODS]
        field = ".".join(loc) or "message"
        kind = err["type"]
        if kind == "missing":
            parts.append(f"missing field '{field}'")
        elif kind == "extra_forbidden":
            parts.append(f"unexpected field '{field}'")
        else:
            parts.append(f"field '{field}': {err['msg']}")
    return "; ".join(parts)


def response(req_cseq: int | None, method: str | None, status: int, reason: str | None = None,
             **fields: Any) -> dict[str, Any]:
    """A response frame to a client request."""
    msg: dict[str, Any] = {"type": "response", "cseq": req_cseq, "method": method, "status": status,
                           "reason": reason or REASONS.get(status, "")}
    msg.update({k: v for k, v in fields.items() if v is not None})
    return msg


def request(method: str, cseq: int, **fields: Any) -> dict[str, Any]:
    """A server-originated request frame (INVITE to an agent, BYE, NOTIFY)."""
    msg: dict[str, Any] = {"type": "request", "method": method, "cseq": cseq}
    msg.update({k: v for k, v in fields.items() if v is not None})
    return msg


def is_final(status: int) -> bool:
    """A final response ends its request; 1xx ones (100 Trying, 180 Ringing, 183 Session Progress) do not."""
    return status >= 200
