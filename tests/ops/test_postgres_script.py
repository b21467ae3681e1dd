"""``scripts/postgres``: starts a local PostgreSQL on 127.0.0.1, prints the URL a node uses, keeps the data
across a stop and a start, and stops."""

import os
import re
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from bargein.signaling.contact_models import Contact, ContactQuery, new_id
from bargein.signaling.store import SqlContactStore

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


async def test_start_prints_the_url_data_survives_a_restart_and_stop() -> None:
    # the server's user must reach the folder: not under pytest's private (0700) temporary root
    root = Path(tempfile.mkdtemp(prefix="bargein-pg-script-"))
    os.chmod(root, 0o755)
    where, port = root / "pg", free_port()
    try:
        started = run("start", str(where), "--port", str(port))
        assert started.returncode == 0, started.stderr
        (line,) = started.stdout.splitlines()
        m = re.fullmatch(r"export BARGEIN_DATABASE_URL=(postgresql\+psycopg://bargein:(\w+)@127\.0\.0\.1:(\d+)/bargein)",
                         line)
        assert m is not None, line
        url = m.group(1)
        assert int(m.group(3)) == port and (where / "password").read_text().strip() == m.group(2)
        assert oct((where / "password").stat().st_mode & 0o777) == "0o600"
        assert run("url", str(where)).stdout.strip() == url
        assert "running on 127.0.0.1" in run("status", str(where)).stdout
        again = run("start", str(where))  # idempotent: already running, same URL
        assert again.returncode == 0 and again.stdout.strip() == line

        store = SqlContactStore(url)
        store.start()
        c = Contact(contact_id=new_id(1000.0), call_id="call-1", queue="support", customer="customer1",
                    initiated=1000.0)
        store.save_contact(c)
        await store.close()
        with pytest.raises(Exception, match="password authentication failed"):  # the password is checked
            SqlContactStore(url.replace(m.group(2), "wrong"))

        assert run("stop", str(where)).returncode == 0
        assert "stopped" in run("status", str(where)).stdout
        assert run("start", str(where)).returncode == 0  # same port, same data
        store = SqlContactStore(url)
        try:
            rows, _ = await store.search(ContactQuery())
            assert [r.contact_id for r in rows] == [c.contact_id]
        finally:
            await store.close()
    finally:
        run("stop", str(where))
        subprocess.run(["rm", "-rf", str(root)], check=False)
