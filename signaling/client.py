"""An asyncio client of the bargein signaling protocol (``docs/protocol.md``).

One :class:`SignalingClient` is one signed-in connection::

    async with await SignalingClient.connect("ws://127.0.0.1:8080/ws") as sup:
        await sup.sign_in("supervisor1")
        r = await sup.request("INVITE", to="call:call-1")         # the final response, as a dict
        if r["status"] == 200:
            ended = await sup.expect("NOTIFY", event="session-ended")

- :meth:`~SignalingClient.request` numbers the request (``cseq``), sends it and returns its final
  response (:func:`is_final`); it raises :class:`RequestTimeout` when none comes in time and
  :class:`ConnectionClosed` when the connection goes away first. :meth:`~SignalingClient.send`
  returns the :class:`Transaction` instead, to read provisional responses (100, 180, 183) as well.
- Requests the server sends (``INVITE`` to an agent, ``ACK``, ``BYE``, ``CANCEL``, ``NOTIFY``) queue up
  in arrival order; read them with ``async for msg in client.notifications()`` or pick one with
  :meth:`~SignalingClient.expect`. The queue is bounded: the oldest are dropped (and counted) when a
  client never reads them.
- :meth:`~SignalingClient.close` (or leaving ``async with``) closes the connection and fails every
  request still waiting with :class:`ConnectionClosed`; so does the server closing it.

Calls with audio pass a :class:`Media` endpoint (e.g. :class:`~bargein.signaling.webrtc_client.ClientLeg`):
the client puts its SDP offer in the request or answer and hands it the server's SDP answer.

The transport is a WebSocket (:meth:`SignalingClient.connect`, :meth:`SignalingClient.over_websocket`) or,
for code that runs inside the server's process, the server's in-process link
(:meth:`SignalingClient.in_process` with :meth:`BargeinServer.open_local
<bargein.signaling.server.BargeinServer.open_local>`): the same protocol without a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import aiohttp
import structlog

from .messages import is_final

log = structlog.get_logger("bargein.client")

Message = dict[str, Any]
"""One frame of the protocol, as its JSON object."""

__all__ = [
    "ClientError", "ConnectionClosed", "Link", "LocalServer", "Media", "Message", "Refused", "RequestTimeout",
    "SignalingClient", "Transaction", "is_final", "place_call", "sign_in",
]


class ClientError(Exception):
    """Base of the client's errors."""


class ConnectionClosed(ClientError):
    """The connection closed (by either side) before the answer came."""


class RequestTimeout(ClientError, TimeoutError):
    """No final response within the timeout (the request may still complete on the server)."""


class Refused(ClientError):
    """A request the caller needed to succeed got an error status; ``response`` is the whole frame."""

    def __init__(self, response: Message) -> None:
        self.response = response
        self.status: int = response.get("status", 0)
        self.reason: str = response.get("reason", "")
        super().__init__(f"{response.get('method')} refused: {self.status} {self.reason}")


class Media(Protocol):
    """One media endpoint of a leg: makes an SDP offer and takes the server's SDP answer."""

    async def offer(self) -> str: ...

    async def accept(self, answer_sdp: str) -> None: ...


class Link(Protocol):
    """The sending half of a transport; the receiving half calls :meth:`SignalingClient.feed` and
    :meth:`SignalingClient.lost`."""

    async def send(self, msg: Message) -> None: ...

    async def close(self) -> None: ...


class LocalServer(Protocol):
    """A server that accepts in-process connections (:class:`~bargein.signaling.server.BargeinServer`)."""

    async def open_local(self, deliver: Callable[[Message], None],
                         closed: Callable[[str], None]) -> Link: ...


class _Waitable:
    """Wakes every waiter when something arrives (deliveries come from plain callbacks, not coroutines)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        self._event.clear()
        await self._event.wait()


class Transaction:
    """One request in flight: its provisional responses as they come, then its final one."""

    def __init__(self, client: SignalingClient, method: str, cseq: int) -> None:
        self.client, self.method, self.cseq = client, method, cseq
        self.final_response: Message | None = None
        self._unread: deque[Message] = deque()
        self._closed: str | None = None
        self._arrived = _Waitable()

    @property
    def done(self) -> bool:
        return self.final_response is not None

    def _deliver(self, msg: Message) -> None:
        self._unread.append(msg)
        if is_final(msg.get("status", 0)):
            self.final_response = msg
        self._arrived.wake()

    def _fail(self, why: str) -> None:
        self._closed = why
        self._arrived.wake()

    async def _next(self) -> Message:
        while not self._unread:
            if self._closed is not None:
                raise ConnectionClosed(f"{self.method} (cseq {self.cseq}): {self._closed}")
            await self._arrived.wait()
        return self._unread.popleft()

    async def next(self, timeout: float | None = None) -> Message:
        """The next response not read yet (provisional or final)."""
        return await self.client._within(self._next(), timeout, f"a response to {self.method} (cseq {self.cseq})")

    async def provisional(self, status: int, timeout: float | None = None) -> Message:
        """Wait for the provisional response ``status`` (e.g. 183 with the SDP answer); raises
        :class:`Refused` if the final response comes first."""
        async def wait() -> Message:
            while True:
                msg = await self._next()
                if msg.get("status") == status:
                    return msg
                if is_final(msg.get("status", 0)):
                    raise Refused(msg)
        return await self.client._within(wait(), timeout, f"{status} to {self.method} (cseq {self.cseq})")

    async def final(self, timeout: float | None = None) -> Message:
        """The final response (provisional ones not read yet are skipped); it can be asked for again."""
        async def wait() -> Message:
            while self.final_response is None:
                await self._next()
            self._unread.clear()
            return self.final_response
        return await self.client._within(wait(), timeout, f"a final response to {self.method} (cseq {self.cseq})")

    async def responses(self, timeout: float | None = None) -> AsyncIterator[Message]:
        """Every response in order, ending with the final one (``timeout`` is per response)."""
        while True:
            msg = await self.next(timeout)
            yield msg
            if is_final(msg.get("status", 0)):
                return


class SignalingClient:
    """An asyncio client of the protocol over one connection; see the module documentation."""

    def __init__(self, *, timeout: float = 10.0, inbox_limit: int = 1000, first_cseq: int = 1) -> None:
        self.timeout = timeout
        self.registration: Message | None = None  # the 200 response to REGISTER
        self.dropped = 0  # server requests dropped because nobody read them
        self.close_reason: str | None = None
        self._link: Link | None = None
        self._cseq = first_cseq - 1
        self._pending: dict[int, Transaction] = {}
        self._inbox: deque[Message] = deque()
        self._inbox_limit = inbox_limit
        self._arrived = _Waitable()
        self._on_close: list[Callable[[], Awaitable[None]]] = []

    # ------------------------------------------------------------------ opening
    @classmethod
    async def connect(cls, url: str, *, session: aiohttp.ClientSession | None = None,
                      **options: Any) -> SignalingClient:
        """Open a WebSocket to ``url`` (``ws://HOST:PORT/ws``); with no ``session`` the client makes
        its own and closes it on :meth:`close`."""
        own = session is None
        session = session or aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url)
        except BaseException:
            if own:
                await session.close()
            raise
        client = cls.over_websocket(ws, **options)
        if own:
            client._on_close.append(session.close)
        return client

    @classmethod
    def over_websocket(cls, ws: aiohttp.ClientWebSocketResponse, **options: Any) -> SignalingClient:
        """Use a WebSocket that is already open (``first_cseq`` if requests were sent on it before)."""
        client = cls(**options)
        client._attach(_WebSocketLink(ws, client))
        return client

    @classmethod
    async def in_process(cls, server: LocalServer, **options: Any) -> SignalingClient:
        """A connection to a server running in this process, without a socket."""
        client = cls(**options)
        client._attach(await server.open_local(client.feed, client.lost))
        return client

    def _attach(self, link: Link) -> None:
        self._link = link

    # ------------------------------------------------------------------ the receiving half
    def feed(self, msg: Message) -> None:
        """A frame arrived from the server (called by the transport)."""
        if msg.get("type") == "response":
            tx = self._pending.get(msg.get("cseq"))  # type: ignore[arg-type]
            if tx is None:
                log.debug("client.stray_response", cseq=msg.get("cseq"), status=msg.get("status"))
                return
            tx._deliver(msg)
            if tx.done:
                del self._pending[tx.cseq]
            return
        if len(self._inbox) >= self._inbox_limit:
            self._inbox.popleft()
            self.dropped += 1
        self._inbox.append(msg)
        self._arrived.wake()

    def lost(self, why: str) -> None:
        """The connection is gone (called by the transport, or by :meth:`close`)."""
        if self.close_reason is not None:
            return
        self.close_reason = why or "connection closed"
        for tx in self._pending.values():
            tx._fail(self.close_reason)
        self._pending.clear()
        self._arrived.wake()

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    # ------------------------------------------------------------------ requests
    @property
    def user(self) -> str | None:
        """The signed-in user's name."""
        return self.registration.get("user") if self.registration else None

    async def send(self, method: str, **fields: Any) -> Transaction:
        """Send a request and return its transaction without waiting for an answer."""
        if self.closed or self._link is None:
            raise ConnectionClosed(f"cannot send {method}: {self.close_reason or 'not connected'}")
        self._cseq += 1
        tx = self._pending[self._cseq] = Transaction(self, method, self._cseq)
        try:
            await self._link.send({"method": method, "cseq": self._cseq, **fields})
        except (ConnectionError, RuntimeError) as exc:
            self.lost(f"send failed: {exc}")
            raise ConnectionClosed(f"cannot send {method}: {exc}") from exc
        return tx

    async def request(self, method: str, *, timeout: float | None = None, **fields: Any) -> Message:
        """Send a request and return its final response, whatever its status."""
        return await (await self.send(method, **fields)).final(timeout)

    async def sign_in(self, token: str, *, state: str | None = None) -> Message:
        """REGISTER with ``token`` (raises :class:`Refused` unless 200); agents may PUBLISH ``state`` too."""
        r = await self.request("REGISTER", token=token)
        if r.get("status") != 200:
            raise Refused(r)
        self.registration = r
        log.debug("client.signed_in", user=self.user)
        if state is not None:
            p = await self.request("PUBLISH", state=state)
            if p.get("status") != 200:
                raise Refused(p)
        return r

    async def respond(self, request: Message, status: int, **fields: Any) -> None:
        """Answer a server request (an agent answering ``INVITE``: 180, 200 or 486/603)."""
        if self.closed or self._link is None:
            raise ConnectionClosed(f"cannot answer {request.get('method')}: {self.close_reason}")
        msg = {"type": "response", "method": request["method"], "cseq": request["cseq"], "status": status,
               "call_id": request.get("call_id"), **fields}
        await self._link.send({k: v for k, v in msg.items() if v is not None})

    # ------------------------------------------------------------------ calls
    async def invite(self, to: str, *, media: Media | None = None, timeout: float | None = None,
                     **fields: Any) -> Message:
        """``INVITE`` a queue (``queue:support``) or a live call to supervise (``call:<id>``) and return
        the final response. With ``media``, its offer goes in the request and the server's answer
        (in the 183 or the 200) is handed back to it."""
        if media is not None:
            fields["sdp"] = await media.offer()
        tx = await self.send("INVITE", to=to, **fields)
        accepted = media is None
        async for r in tx.responses(timeout):
            if not accepted and r.get("sdp"):
                await media.accept(r["sdp"])  # type: ignore[union-attr]
                accepted = True
        return tx.final_response  # type: ignore[return-value]

    async def answer(self, *, media: Media | None = None, status: int = 200,
                     timeout: float | None = None) -> Message:
        """Wait for the server's ``INVITE`` and answer it with ``status``; with ``media``, send its offer
        and hand it the SDP answer from the server's ``ACK``. Returns the INVITE."""
        invite = await self.expect("INVITE", timeout=timeout)
        fields = {"sdp": await media.offer()} if media is not None and status == 200 else {}
        await self.respond(invite, status, **fields)
        if fields:
            ack = await self.expect("ACK", call_id=invite["call_id"], timeout=timeout)
            await media.accept(ack["sdp"])  # type: ignore[union-attr]
        return invite

    # ------------------------------------------------------------------ server requests
    async def expect(self, method: str | None = None, *, event: str | None = None, call_id: str | None = None,
                     timeout: float | None = None) -> Message:
        """Take the first queued server request that matches (others stay queued), waiting for one."""
        def matches(msg: Message) -> bool:
            return ((method is None or msg.get("method") == method) and (event is None or msg.get("event") == event)
                    and (call_id is None or msg.get("call_id") == call_id))

        async def wait() -> Message:
            while True:
                for i, msg in enumerate(self._inbox):
                    if matches(msg):
                        del self._inbox[i]
                        return msg
                if self.closed:
                    raise ConnectionClosed(f"no {method or event or 'request'} before close: {self.close_reason}")
                await self._arrived.wait()
        return await self._within(wait(), timeout, f"a server {method or ''} {event or ''}".strip())

    async def notifications(self) -> AsyncIterator[Message]:
        """Every server request in arrival order; ends when the connection closes."""
        while True:
            if self._inbox:
                yield self._inbox.popleft()
            elif self.closed:
                return
            else:
                await self._arrived.wait()

    async def _within(self, waiting: Awaitable[Message], timeout: float | None, what: str) -> Message:
        limit = self.timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(waiting, limit)
        except TimeoutError:
            raise RequestTimeout(f"no {what} within {limit:g} s") from None

    # ------------------------------------------------------------------ closing
    async def close(self) -> None:
        """Close the connection; requests still waiting fail with :class:`ConnectionClosed`."""
        self.lost("closed by the client")
        if self._link is not None:
            link, self._link = self._link, None
            with contextlib.suppress(ConnectionError, RuntimeError):
                await link.close()
        for hook in self._on_close:
            await hook()
        self._on_close.clear()

    async def __aenter__(self) -> SignalingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _WebSocketLink:
    """The WebSocket transport: sends JSON frames; a reader task feeds what arrives to the client."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, client: SignalingClient) -> None:
        self.ws, self.client = ws, client
        self.reader = asyncio.get_running_loop().create_task(self._read(), name="bargein-client-reader")

    async def send(self, msg: Message) -> None:
        await self.ws.send_json(msg)

    async def _read(self) -> None:
        why = "the server closed the connection"
        try:
            while True:
                frame = await self.ws.receive()
                if frame.type == aiohttp.WSMsgType.TEXT:
                    try:
                        msg = json.loads(frame.data)
                    except ValueError:
                        log.warning("client.bad_frame", data=frame.data[:80])
                        continue
                    if isinstance(msg, dict):
                        self.client.feed(msg)
                elif frame.type == aiohttp.WSMsgType.CLOSE:
                    why = f"the server closed the connection ({frame.data}{': ' + frame.extra if frame.extra else ''})"
                    break
                elif frame.type == aiohttp.WSMsgType.ERROR:
                    why = f"connection error: {self.ws.exception()}"
                    break
                elif frame.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    break
        finally:
            self.client.lost(why)

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


async def sign_in(url: str, token: str, *, session: aiohttp.ClientSession | None = None, state: str | None = None,
                  **options: Any) -> SignalingClient:
    """Connect to ``url`` and sign in as ``token`` (and PUBLISH ``state``); raises :class:`Refused`."""
    client = await SignalingClient.connect(url, session=session, **options)
    try:
        await client.sign_in(token, state=state)
    except BaseException:
        await client.close()
        raise
    return client


async def place_call(customer: SignalingClient, agent: SignalingClient, *, to: str = "queue:support",
                     customer_media: Media | None = None, agent_media: Media | None = None,
                     timeout: float | None = None) -> str:
    """Drive both ends of a call: ``customer`` calls ``to`` and ``agent`` (signed in, available) answers.
    Returns the call id; raises :class:`Refused` when the call is not answered."""
    calling = asyncio.ensure_future(customer.invite(to, media=customer_media, timeout=timeout))
    try:
        answering = asyncio.ensure_future(agent.answer(media=agent_media, timeout=timeout))
        done, _ = await asyncio.wait({calling, answering}, return_when=asyncio.FIRST_COMPLETED)
        if calling in done and calling.result().get("status") != 200:
            answering.cancel()
            raise Refused(calling.result())
        await answering
        ok = await calling
    finally:
        calling.cancel()
    if ok.get("status") != 200:
        raise Refused(ok)
    return ok["call_id"]
