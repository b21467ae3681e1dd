"""The media worker interface without processes: its messages and framing, the core ending calls whose
worker died, generated load users, and the settings / CLI that choose the number of workers."""

from __future__ import annotations

import asyncio
import struct

import pytest
from bargein.mixer.roles import Role, SupervisorMode
from bargein.mixer.routing import LegRouting
from bargein.signaling.directory import load_directory
from bargein.signaling.load_users import with_load_users
from bargein.signaling.media import protocol as p
from bargein.signaling.settings import Settings, load_settings
from helpers.inprocess import Harness, start_call
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bargein.app import media_workers
from bargein.cli import build_parser

ROUTINGS = st.builds(
    lambda role, mode, muted, held: LegRouting(role, mode if role is Role.SUPERVISOR else None, muted=muted, held=held),
    st.sampled_from(list(Role)), st.sampled_from(list(SupervisorMode)), st.booleans(), st.booleans())


def _stream(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


@settings(deadline=None)  # no timing in tests: a busy machine may take any time per example
@given(routing=ROUTINGS, worker=st.text(min_size=1, max_size=20), sdp=st.text(max_size=2000))
def test_every_message_survives_json_framing_unchanged(routing: LegRouting, worker: str, sdp: str) -> None:
    to_worker = [p.AddLeg(worker=worker, call_id="call-1", leg="leg-1", routing=p.Routing.of(routing)),
                 p.UpdateLeg(worker=worker, call_id="call-1", leg="leg-1", routing=p.Routing.of(routing)),
                 p.RemoveLeg(worker=worker, call_id="call-1", leg="leg-1"),
                 p.MeterCall(worker=worker, call_id="call-1", on=True),
                 p.Offer(worker=worker, request=7, call_id="call-1", leg="leg-1", sdp=sdp),
                 p.StatsRequest(worker=worker, request=8, per_leg=True), p.Shutdown(worker=worker)]
    from_worker = [p.Hello(worker=worker, pid=1, loop="uvloop"), p.Answer(worker=worker, request=7, leg="leg-1", sdp=sdp),
                   p.Refused(worker=worker, request=7, leg="leg-1", reason="no audio"),
                   p.LegLost(worker=worker, call_id="call-1", leg="leg-1", reason="media connection lost"),
                   p.LegLevels(worker=worker, calls={"call-1": {"leg-1": 0.25, "leg-2": 0.0}})]

    async def roundtrip() -> None:
        reader = _stream(b"".join(p.encode(m) for m in to_worker + from_worker))
        for sent in to_worker:
            assert p.TO_WORKER.validate_json(await p.read_frame(reader)) == sent  # type: ignore[arg-type]
        for sent in from_worker:
            assert p.FROM_WORKER.validate_json(await p.read_frame(reader)) == sent  # type: ignore[arg-type]
        assert await p.read_frame(reader) is None  # a clean end of stream
    asyncio.run(roundtrip())
    assert p.Routing.of(routing).to_mixer() == routing


def test_broken_frames_are_errors_not_hangs() -> None:
    async def read(data: bytes) -> bytes | None:
        return await p.read_frame(_stream(data))
    with pytest.raises(p.FrameError, match="exceeds"):
        asyncio.run(read(struct.pack(">I", p.MAX_FRAME + 1)))
    with pytest.raises(p.FrameError, match="inside a frame"):
        asyncio.run(read(struct.pack(">I", 10) + b"{}"))
    with pytest.raises(p.FrameError, match="header"):
        asyncio.run(read(b"\x00\x01"))


def test_leg_levels_out_of_range_are_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="calls"):
        p.FROM_WORKER.validate_json('{"type": "leg_levels", "worker": "w1", "calls": {"call-1": {"leg-1": 3.0}}}')


def test_invalid_message_names_the_field() -> None:
    with pytest.raises(ValidationError, match="routing"):
        p.TO_WORKER.validate_json(b'{"type": "add_leg", "worker": "w1", "call_id": "c", "leg": "l"}')
    with pytest.raises(ValidationError, match="mode"):
        p.Routing.model_validate({"role": "supervisor", "mode": "shout"})
    with pytest.raises(ValidationError):
        p.FROM_WORKER.validate_json(b'{"type": "hello", "worker": "w1"}')


def test_calls_whose_media_worker_died_end_with_the_reason_for_everyone() -> None:
    h = Harness()
    c, a, call_id = start_call(h)
    s = h.client("supervisor1")
    assert s.request("INVITE", to=f"call:{call_id}")["status"] == 200
    c2, a2, other = start_call(h, "customer2", "agent2")
    h.apply(h.core.media_lost([call_id, "call-unknown"], "media worker failed"))
    for party in (c, a):  # nobody is "by": every party gets a BYE with the reason
        bye = party.pop("BYE")
        assert bye is not None and bye["reason"] == "media worker failed"
    ended = s.pop("NOTIFY", event="session-ended")
    assert ended is not None and ended["reason"] == "media worker failed"
    assert h.legs_of(call_id) == {} and call_id not in h.core.calls
    assert other in h.core.calls and len(h.legs_of(other)) == 2  # the other worker's call goes on
    assert h.core.records.contacts[0].end_reason == "media worker failed"


def test_load_users_add_every_role_with_token_equal_to_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    users = tmp_path / "users.json"  # a directory without the demo profiles: they are added
    users.write_text('{"profiles": [{"name": "Boss", "permissions": ["access_metrics"]}], '
                     '"users": [{"name": "boss", "token": "t-boss", "role": "supervisor", "profile": "Boss"}]}')
    d = with_load_users(load_directory(users), 3)
    for role in ("agent", "customer", "supervisor"):
        for i in (1, 3):
            u = d.by_token(f"load{role}{i}")
            assert u is not None and u.role == role and u.name == f"load{role}{i}"
    assert d.by_token("t-boss") is not None and len(d.users) == 10
    assert "realtime_barge" in d.permissions(d.user("loadsupervisor2"))  # type: ignore[arg-type]
    assert with_load_users(load_directory(None), 0).users == load_directory(None).users  # off by default


def test_media_workers_setting_env_cli_and_demo_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().media_workers is None and Settings().load_users == 0
    monkeypatch.setenv("BARGEIN_MEDIA_WORKERS", "3")
    assert load_settings().media_workers == 3
    assert load_settings(media_workers=0).media_workers == 0  # the flag wins over the environment
    args = build_parser().parse_args(["serve", "--media-workers", "2", "--load-users", "50"])
    assert args.media_workers == 2 and args.load_users == 50
    with pytest.raises(ValidationError, match="media_workers"):
        Settings(media_workers=-1)
    assert media_workers(Settings(media_workers=2)) == 2
    assert media_workers(Settings(media_workers=2), demo_calls=3) == 0  # demo calls feed the local mixer
    assert media_workers(Settings(media_workers=None)) >= 1
