"""ICE consent freshness (RFC 7675) that a busy endpoint does not fail on its own.

aioice checks consent with one STUN request every ~5 s, gives each a single 0.5 s timeout, and
closes the connection after 6 checks in a row went unanswered. A process that falls behind (a
media worker starved of CPU) reads its socket late: the peer's answers wait in the receive queue
behind the audio (an asyncio loop reads one datagram per socket per iteration), every check times
out although the peer answered at once, and ~30 s later aioice closes a connection whose peer is
alive. That is how the latency benchmark lost its call after 45-65 s on a loaded machine.

RFC 7675 asks only that consent expires when no authenticated answer came for 30 s. So here every
check keeps retransmitting for as long (an answer read late still counts), checks overlap, and
consent expires ``CONSENT_EXPIRY_S`` after the last answer. A peer that went away is still found
within seconds by the silent-peer watchdog of the server's legs (:mod:`.webrtc`).

This replaces one method of aioice's ``Connection`` per peer connection, reached through aiortc's
transports; :func:`keep_consent` checks the layout (aiortc is pinned to 1.16) and leaves aioice's
own check in place when it differs.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from typing import Any

import structlog
from aioice import Connection, stun
from aiortc import RTCPeerConnection

log = structlog.get_logger("bargein.webrtc")

CONSENT_INTERVAL_S = 5.0  # as aioice (and browsers): one check every 4-6 s
CONSENT_EXPIRY_S = 30.0  # RFC 7675 section 5.1
RETRANSMISSIONS = 5  # 0.5 s doubling: a check waits 31.5 s for its answer, past the expiry


def keep_consent(pc: RTCPeerConnection) -> bool:
    """Check consent of ``pc``'s ICE connections as above (call before the connection starts);
    False when aiortc/aioice are not laid out as pinned (aioice's own check then stays)."""
    ok = True
    for transceiver in pc.getTransceivers():
        ice = getattr(getattr(transceiver.sender, "transport", None), "transport", None)
        conn = getattr(ice, "_connection", None)
        if not isinstance(conn, Connection) or not all(
                hasattr(conn, a) for a in ("_nominated", "_query_consent_task", "build_request", "remote_password")):
            log.warning("webrtc.consent_shim_unavailable", found=type(conn).__name__)
            ok = False
            continue
        conn.query_consent = functools.partial(_query_consent, conn)  # type: ignore[method-assign]
    return ok


async def _query_consent(conn: Connection) -> None:
    """Started by aioice once the connection is up, as its own ``query_consent``."""
    last_answer = time.monotonic()
    checks: set[asyncio.Task[None]] = set()

    async def check(pair: Any) -> None:
        nonlocal last_answer
        assert conn.remote_password is not None
        try:
            await pair.protocol.request(conn.build_request(pair, nominate=False), pair.remote_addr,
                                        integrity_key=conn.remote_password.encode("utf8"),
                                        retransmissions=RETRANSMISSIONS)
        except (stun.TransactionError, ConnectionError):
            return
        last_answer = time.monotonic()

    try:
        while True:
            await asyncio.sleep(CONSENT_INTERVAL_S * (0.8 + 0.4 * random.random()))
            silent = time.monotonic() - last_answer
            if silent > CONSENT_EXPIRY_S:
                log.warning("webrtc.consent_expired", unanswered_s=round(silent, 1))
                conn._query_consent_task = None  # close() must not cancel the task that calls it
                await conn.close()
                return
            for pair in list(conn._nominated.values()):
                task = asyncio.get_running_loop().create_task(check(pair))
                checks.add(task)
                task.add_done_callback(checks.discard)
    finally:
        for task in checks:
            task.cancel()
