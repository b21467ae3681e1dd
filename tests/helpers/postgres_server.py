"""A real PostgreSQL server for tests (Debian's ``postgresql``; ``scripts/test`` installs it).

:class:`PostgresServer` runs ``initdb`` into a fresh temporary folder and ``pg_ctl start`` on a free port
on 127.0.0.1, with its Unix socket in that folder (never the system's ``/var/run/postgresql``), and
stops it and removes the folder at the end. PostgreSQL refuses to run as root: as root, every server
command runs as the ``postgres`` system user (``runuser``) and the folder is handed to that user.

The server is for tests only: ``trust`` authentication on loopback, and no fsync (the tests kill
bargein processes, never the database's host).

Fixtures: ``postgres`` (one server for the session, started on first use), ``postgres_url`` (a fresh,
empty database on it for each test) and ``database_url`` (parametrized: ``None`` for the embedded
SQLite default, then a fresh PostgreSQL database), for tests that must hold for both.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_USER = "postgres"  # the system user Debian's package creates; the server runs as it when we are root


def bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` are: ``BARGEIN_PG_BINDIR``, else Debian's newest
    ``/usr/lib/postgresql/<version>/bin``, else the ``PATH``."""
    if os.environ.get("BARGEIN_PG_BINDIR"):
        return Path(os.environ["BARGEIN_PG_BINDIR"])
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    if found:
        newest = max(found, key=lambda p: int(re.search(r"/(\d+)/bin/", p).group(1)))  # type: ignore[union-attr]
        return Path(newest).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL is not installed (Debian: apt-get install postgresql; scripts/test installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One throw-away PostgreSQL cluster (``with PostgresServer() as pg: pg.create_database()``)."""

    def __init__(self, *, superuser: str = "postgres") -> None:
        self.superuser = superuser
        self.bin = bindir()
        self.root = Path(tempfile.mkdtemp(prefix="bargein-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self.as_root = os.geteuid() == 0
        if self.as_root:  # the server's user must own its folder (mkdtemp made it 0700, ours)
            pw = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", superuser, "--auth=trust", "--encoding=UTF8",
                  "--locale=C.UTF-8", "--no-sync")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
        if check and res.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({res.returncode}): {res.stdout}{res.stderr}\n{log[-4000:]}")
        return res

    def start(self) -> None:
        """Start (again) on a free port; returns once it accepts connections."""
        for attempt in range(3):  # another process may take the free port before the server binds it
            self.port = self.port if attempt == 0 and self.port else free_port()
            options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            res = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120",
                            "-o", options, "start", check=attempt == 2)
            if res.returncode == 0:
                return

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "120", "stop", check=False)

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL (psycopg 3) of a database on this server."""
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = name or f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.superuser, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        if self.running():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (started when a test first needs it)."""
    with PostgresServer() as pg:
        yield pg


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """A fresh, empty database for this test."""
    return postgres.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """The contact store's URL: ``None`` (the embedded SQLite default in data_dir), then PostgreSQL."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")
