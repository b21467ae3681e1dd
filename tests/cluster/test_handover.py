"""The leader's state handed to a successor (no Redis, no sockets): a core restored from a snapshot
carries on the calls, supervisors, agent states and records of the one that wrote it."""

from __future__ import annotations

import base64
import pickle
import zlib
from pathlib import Path

import pytest
from bargein.mixer.roles import SupervisorMode
from bargein.signaling.cluster.handover import (
    CODE,
    Snapshot,
    contact_state,
    core_state,
    dumps,
    install,
    loads,
)
from bargein.signaling.contact_log import ContactLog
from bargein.signaling.core import SignalingCore
from bargein.signaling.media.recording import PoolRecorder
from helpers.inprocess import Harness, offer, start_call


class _NoPool:
    on_recording_failed = None

    def start_recording(self, *args: object) -> str:
        return "no media here"

    def stop_recording(self, rec_id: int) -> None:
        pass


def _contacts(h: Harness) -> ContactLog:
    log = ContactLog(h.core.settings, PoolRecorder(_NoPool()))  # type: ignore[arg-type]
    h.core.records.listener = log
    return log


def _successor(h: Harness, contacts: ContactLog, relayed: dict[str, str]) -> tuple[
        SignalingCore, ContactLog, Snapshot]:
    """Write the harness core's state as a leader does, and load it as a new leader does."""
    text = dumps(Snapshot(leader="n1", boot="b1", written=0.0, core=core_state(h.core), contacts=contact_state(contacts),
                          media={}, relayed=relayed), h.core, contacts)
    fresh = SignalingCore(h.core.settings, h.core.directory, clock=h.clock)
    mine = ContactLog(h.core.settings, PoolRecorder(_NoPool()))  # type: ignore[arg-type]
    snap = loads(text, fresh, mine)
    install(fresh, mine, snap)
    return fresh, mine, snap


@pytest.fixture
def h(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Harness:
    monkeypatch.setenv("BARGEIN_DATA_DIR", str(tmp_path))
    return Harness(data_dir=tmp_path)


def test_a_restored_core_carries_on_a_supervised_call(h: Harness, tmp_path: Path) -> None:
    contacts = _contacts(h)
    c, a, call_id = start_call(h)
    s = h.client("supervisor1")
    assert s.request("INVITE", to=f"call:{call_id}", sdp=offer("sup"))["status"] == 200
    assert s.request("SUBSCRIBE", event="agents")["status"] == 200
    assert contacts.contacts[call_id].agent == "agent1"

    core, mine, snap = _successor(h, contacts, {c.conn: "n2", a.conn: "n2", s.conn: "n3"})
    assert snap.code == CODE and snap.relayed[s.conn] == "n3"
    assert core.settings is h.core.settings and core.directory is h.core.directory  # the node's own
    assert core.records.listener is mine and mine.contacts[call_id].call_id == call_id
    h.core = core  # the successor serves the same clients from here on

    assert s.request("INFO", call_id=call_id, action="mode", mode="barge")["status"] == 200
    assert h.legs_of(call_id)["supervisor1"].mode is SupervisorMode.BARGE
    assert a.last("call-state")["supervisors"] == [{"user": "supervisor1", "mode": "barge"}]
    assert core.agents_view()[0]["state"] == "on-call"
    assert a.request("BYE", call_id=call_id)["status"] == 200
    ended = s.pop("NOTIFY", event="session-ended")
    assert ended is not None and "agent" in ended["reason"]
    assert h.legs_of(call_id) == {}
    assert call_id not in mine.contacts  # the successor's contact log closed the contact


def test_sessions_of_lost_nodes_end_and_their_calls_with_them(h: Harness, tmp_path: Path) -> None:
    contacts = _contacts(h)
    c, a, call_id = start_call(h)
    core, _, _ = _successor(h, contacts, {a.conn: "n2"})  # the customer's socket was on the dead leader
    h.core = core
    h.apply(core.disconnect(c.conn))  # what take_over does for a session with no live socket
    bye = a.pop("BYE")
    assert bye is not None and bye["call_id"] == call_id
    assert call_id not in core.calls and h.legs_of(call_id) == {}


def test_a_snapshot_names_only_the_nodes_own_objects(h: Harness, tmp_path: Path) -> None:
    """Settings, users and the contact log are the loading node's, never copies from the snapshot."""
    contacts = _contacts(h)
    start_call(h)
    text = dumps(Snapshot(leader="n1", boot="b1", written=0.0, core=core_state(h.core), contacts=contact_state(contacts),
                          media={}, relayed={}), h.core, contacts)
    other = Harness()
    with pytest.raises(pickle.UnpicklingError):  # a plain unpickler does not know the node's objects
        pickle.loads(zlib.decompress(base64.b64decode(text)))
    core = SignalingCore(other.core.settings, other.core.directory)
    snap = loads(text, core, ContactLog(other.core.settings, PoolRecorder(_NoPool())))  # type: ignore[arg-type]
    assert snap.core["sessions"].settings is other.core.settings


def test_the_handover_benchmark_measures_busy_cores() -> None:
    from benchmarks.handover import measure
    row = measure(3, 1)
    assert row["live_calls"] == 3 and row["sessions"] == 6 and row["snapshot_kib"] > 0


def _burn(cpu_s: float) -> None:
    import time
    end = time.thread_time() + cpu_s
    while time.thread_time() < end:
        pass


class _Pipe:
    def __init__(self) -> None:
        self.evals: list[tuple] = []

    def eval(self, *args: object) -> None:
        self.evals.append(args)


def test_every_publication_after_a_change_is_headed_by_its_snapshot() -> None:
    """A cheap snapshot heads every outbox pipeline that follows a change, however soon after the last:
    what an edge or media node hears is in Redis first (the failover test saw a BYE sent as a CANCEL
    when a pipeline went out without it)."""

    from bargein.signaling.cluster.bus import Bus
    from bargein.signaling.cluster.handover import Handover

    def take() -> str:
        _burn(0.001)  # a small state: about a millisecond of CPU
        return f"state {len(pipe.evals)}"
    handover = Handover(Bus("redis://127.0.0.1:1/0", "n1"), "n1", "b1")
    handover.take, handover.leading = take, True
    pipe = _Pipe()
    for _ in range(3):
        handover.changed()
        handover._prelude(pipe)
    assert [e[5] for e in pipe.evals] == ["state 0", "state 1", "state 2"]
    handover._prelude(pipe)  # nothing changed since: nothing written
    assert len(pipe.evals) == 3


async def test_the_server_marks_its_state_changed_before_any_frame_goes_out(tmp_path: Path) -> None:
    """A leader's frames are published through the outbox as they are applied: the snapshot that heads
    their pipeline must already know of the change (a relayed ACK once went out ahead of it, and the
    successor rang a call its agent had answered)."""
    from bargein.signaling.server import BargeinServer
    from bargein.signaling.settings import Settings

    server = BargeinServer(Settings(data_dir=tmp_path))
    seen: list[object] = []
    server.state_changed = lambda: seen.append("changed")
    local = await server.open_local(lambda msg: seen.append(msg.get("status")))
    seen.clear()
    await local.send({"method": "REGISTER", "cseq": 1, "token": "agent1"})
    assert seen == ["changed", 200]
    seen.clear()
    await local.send({"method": "OPTIONS", "cseq": 2})  # a liveness probe changes nothing worth handing over
    assert seen == [200]


def test_a_dear_snapshot_is_kept_to_a_share_of_the_leaders_time() -> None:
    """A big state (here 6 ms of CPU a snapshot) is not written ahead of every pipeline: the next one
    after a change soon after the last is left to a later pipeline (or the writer)."""
    from bargein.signaling.cluster.bus import Bus
    from bargein.signaling.cluster.handover import COST_SHARE, Handover

    def take() -> str:
        _burn(0.006)
        return "big state"
    handover = Handover(Bus("redis://127.0.0.1:1/0", "n1"), "n1", "b1")
    handover.take, handover.leading = take, True
    pipe = _Pipe()
    handover.changed()
    handover._prelude(pipe)
    handover.changed()
    handover._prelude(pipe)  # at once: skipped, still to be written
    assert len(pipe.evals) == 1
    handover._taken -= COST_SHARE * handover.cost_s  # as if that long had passed
    handover._prelude(pipe)
    assert len(pipe.evals) == 2


def test_a_state_that_does_not_pickle_never_stops_the_outbox() -> None:
    """The snapshot heads the outbox's pipelines: if it cannot be made, the pipeline goes without it
    (and the failure is counted and logged) rather than the outbox task dying with every later message."""
    from bargein.signaling.cluster.bus import Bus
    from bargein.signaling.cluster.handover import Handover

    def take() -> str:
        raise pickle.PicklingError("a lambda in the state")
    handover = Handover(Bus("redis://127.0.0.1:1/0", "n1"), "n1", "b1")
    handover.take, handover.leading = take, True
    pipe = _Pipe()
    handover.changed()
    handover._prelude(pipe)  # does not raise
    assert pipe.evals == [] and handover.failed == 1
