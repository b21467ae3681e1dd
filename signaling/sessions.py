"""Connections and who is signed in on them: the connection limit, per-connection rate limit and cseq order,
sign-in by token, and the newest session of a user replacing an older one."""

from __future__ import annotations

import structlog

from . import messages as m
from .actions import ConnId, Send
from .directory import Directory, User
from .model import Connection
from .policy import Refused
from .ratelimit import BucketTable, TokenBucket, default_burst
from .settings import Settings

log = structlog.get_logger("bargein.signaling")


class Sessions:
    def __init__(self, settings: Settings, directory: Directory) -> None:
        self.settings, self.directory = settings, directory
        self.conns: dict[ConnId, Connection] = {}
        self.online: dict[str, ConnId] = {}  # signed-in user -> its current connection
        per_user = settings.max_requests_per_second
        per_address = settings.max_requests_per_second_per_address
        self.by_user = BucketTable(per_user, default_burst(per_user))
        self.by_address = BucketTable(per_address, default_burst(per_address))
        failed = settings.failed_signins_per_minute / 60
        self.failed_signins = BucketTable(failed, max(1.0, settings.failed_signins_burst))

    def open(self, conn: ConnId, now: float, remote: str | None = None) -> bool:
        """Accept a new transport, unless the server is full."""
        if len(self.conns) >= self.settings.max_connections:
            log.warning("signaling.refused_connection", conn=conn, why="connection limit")
            return False
        rate = self.settings.max_requests_per_second
        self.conns[conn] = Connection(conn, TokenBucket(rate, default_burst(rate), now), remote=remote)
        return True

    def close(self, conn: ConnId) -> tuple[Connection | None, bool]:
        """Forget ``conn``; also say whether it was its user's current session (the user is now offline)."""
        c = self.conns.pop(conn, None)
        if c is None or c.user is None or self.online.get(c.user.name) != conn:
            return c, False
        del self.online[c.user.name]
        return c, True

    def rate_limited(self, c: Connection, now: float) -> bool:
        """Per connection, and across connections per signed-in user and per remote address."""
        if not c.bucket.take(now):
            return True
        if c.user is not None and not self.by_user.take(c.user.name, now):
            return True
        return c.remote is not None and not self.by_address.take(c.remote, now)

    def too_many(self, c: Connection, cseq: int | None, method: str | None) -> Send:
        log.warning("signaling.rate_limited", conn=c.conn, user=c.user.name if c.user else None)
        return Send(c.conn, m.response(cseq, method, 429,
                                       f"too many requests: at most {self.settings.max_requests_per_second:g}/s"))

    def check_request(self, c: Connection, cseq: int, method: str) -> None:
        """A request must have a fresh cseq, and come after sign-in."""
        if cseq <= c.last_cseq:
            raise Refused(400, f"field 'cseq': {cseq} was already used; cseq must increase (last was {c.last_cseq})")
        c.last_cseq = cseq
        if c.user is None and method != "REGISTER":
            raise Refused(401, "sign in first: send REGISTER with your token")

    def sign_in(self, c: Connection, token: str, now: float) -> tuple[User, ConnId | None]:
        """Who ``token`` is, and the user's older connection that this one replaces (to be closed)."""
        if c.remote is not None and self.failed_signins.exhausted(c.remote, now):
            log.warning("signaling.signin_throttled", conn=c.conn, remote=c.remote)
            raise Refused(429, "too many failed sign-ins from this address: wait a few seconds")
        user = self.directory.by_token(token)
        if user is None:
            if c.remote is not None:
                self.failed_signins.take(c.remote, now)
            raise Refused(401, "unknown token")
        if c.user is not None and c.user.name != user.name:
            raise Refused(403, f"this connection is signed in as {c.user.name}")
        old = self.online.get(user.name)
        if old is not None and old != c.conn:
            log.info("signaling.session_replaced", user=user.name, old=old, new=c.conn)
            return user, old
        return user, None

    def signed_in(self, c: Connection, user: User) -> None:
        c.user = user
        self.online[user.name] = c.conn
        log.info("signaling.registered", user=user.name, role=user.role, profile=user.profile, conn=c.conn)
