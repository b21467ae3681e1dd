"""What a cluster leader's snapshot of its state costs (``signaling/cluster/handover.py``): for N calls,
each a customer and an agent signed in and talking, the snapshot's size and the time to make it (the
leader does this on its event loop, ahead of what it publishes). In-process: no Redis, no sockets.

    python -m benchmarks.handover --calls 100,1000,3000 --json benchmarks/results/handover.json
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog
from bargein.signaling.cluster.handover import Snapshot, contact_state, core_state, dumps, loads
from bargein.signaling.contact_log import ContactLog
from bargein.signaling.core import SignalingCore
from bargein.signaling.directory import demo_directory
from bargein.signaling.load_users import with_load_users
from bargein.signaling.settings import Settings

from ._report import print_table, write_json

OFFER = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
         "c=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\n")


class _NoRecorder:
    on_error = None

    def start(self) -> None: ...

    def record(self, *args: object) -> str:
        return "not recorded in this benchmark"

    def stop(self, rec_id: int) -> None: ...

    def close(self) -> None: ...


def busy_core(calls: int, data_dir: Path) -> tuple[SignalingCore, ContactLog]:
    """A core with ``calls`` answered calls (each: a customer and an agent, signed in, with their legs)."""
    queues = {"support": {"agents": [f"loadagent{i}" for i in range(1, calls + 1)], "record": "none"}}
    settings = Settings(queues=queues, max_connections=4 * calls + 100, data_dir=data_dir)
    core = SignalingCore(settings, with_load_users(demo_directory(), calls))
    contacts = ContactLog(settings, _NoRecorder())  # type: ignore[arg-type]
    core.records.listener = contacts
    n = 0

    def handle(conn: str, msg: dict[str, Any]) -> list[Any]:
        out = core.handle(conn, msg)
        for a in out:  # media answers come from the server; here every offer is answered at once
            if getattr(a, "media_leg", None) is not None:
                out += core.media_answered(a.media_leg)
        return out

    for i in range(1, calls + 1):
        agent, customer = f"a{i}", f"c{i}"
        for conn in (agent, customer):
            n += 1
            core.connect(conn, remote=f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
        handle(agent, {"method": "REGISTER", "cseq": 1, "token": f"loadagent{i}"})
        handle(agent, {"method": "PUBLISH", "cseq": 2, "state": "available"})
        handle(customer, {"method": "REGISTER", "cseq": 1, "token": f"loadcustomer{i}"})
        out = handle(customer, {"method": "INVITE", "cseq": 2, "to": "queue:support", "sdp": OFFER})
        invite = next(a.message for a in out if getattr(a, "conn", None) == agent
                      and a.message.get("method") == "INVITE")
        handle(agent, {"type": "response", "method": "INVITE", "cseq": invite["cseq"], "status": 200,
                       "call_id": invite["call_id"], "sdp": OFFER})
    return core, contacts


def measure(calls: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        core, contacts = busy_core(calls, Path(tmp))
        active = sum(1 for c in core.calls.values() if c.answered is not None)

        def snap() -> str:
            return dumps(Snapshot(leader="n1", boot="b", written=time.time(), core=core_state(core),
                                  contacts=contact_state(contacts), media={}, relayed={}), core, contacts)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            text = snap()
            times.append(time.perf_counter() - t0)
        fresh = SignalingCore(core.settings, core.directory)
        t0 = time.perf_counter()
        loads(text, fresh, contacts)
        load_s = time.perf_counter() - t0
    times.sort()
    return {"calls": calls, "live_calls": active, "sessions": len(core.conns), "snapshot_kib": round(len(text) / 1024, 1),
            "dump_ms_p50": round(1000 * times[len(times) // 2], 2), "dump_ms_min": round(1000 * times[0], 2),
            "load_ms": round(1000 * load_s, 2),
            "dump_us_per_call": round(1e6 * times[len(times) // 2] / calls, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", default="100,1000,3000", help="comma-separated call counts")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    rows = [measure(int(n), args.repeats) for n in args.calls.split(",")]
    print_table("leader snapshot (handover)", rows, list(rows[0]))
    write_json(args.json, rows)


if __name__ == "__main__":
    main()
