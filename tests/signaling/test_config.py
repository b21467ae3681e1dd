"""Settings (defaults < TOML < BARGEIN_* env < CLI), the users/profiles file, the CLI parser."""

import json
from pathlib import Path

import pytest
from bargein.signaling.core import SignalingCore
from bargein.signaling.directory import load_directory
from bargein.signaling.settings import Settings, load_settings
from helpers.inprocess import Harness, start_call
from pydantic import ValidationError

from bargein.cli import build_parser

USERS = {
    "profiles": [
        {"name": "Agent", "permissions": ["ccp_access"]},
        {"name": "QualityListener", "permissions": ["access_metrics", "realtime_monitor"]},
        {"name": "Caller", "permissions": ["ccp_access"]},
    ],
    "users": [
        {"name": "ann", "token": "tok-ann", "role": "agent", "profile": "Agent"},
        {"name": "bob", "token": "tok-bob", "role": "customer", "profile": "Caller"},
        {"name": "qa", "token": "tok-qa", "role": "supervisor", "profile": "QualityListener"},
    ],
}


def test_defaults_need_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("BARGEIN_HOST", "BARGEIN_PORT", "BARGEIN_ENHANCED_MONITORING"):
        monkeypatch.delenv(k, raising=False)
    s = load_settings()
    assert s.host == "127.0.0.1" and s.port == 8080 and s.enhanced_monitoring
    assert (s.limits.max_parties, s.limits.max_supervisors, s.limits.max_barging) == (6, 2, 1)
    assert all(q.monitoring_allowed for q in s.queues.values())


def test_toml_then_env_then_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "bargein.toml"
    cfg.write_text('port = 9000\nenhanced_monitoring = false\nmixer_rate = 16000\n'
                   '[limits]\nmax_parties = 4\n[queues.support]\nmonitoring_allowed = false\n'
                   '[queues.vip]\nmonitoring_allowed = true\n')
    monkeypatch.setenv("BARGEIN_PORT", "9100")
    monkeypatch.setenv("BARGEIN_LIMITS__MAX_SUPERVISORS", "3")
    s = load_settings(cfg, host="127.0.0.2")
    assert s.port == 9100  # env beats the file
    assert s.host == "127.0.0.2"  # CLI beats env
    assert s.enhanced_monitoring is False and s.mixer_rate == 16000
    assert s.limits.max_supervisors == 3
    assert s.queues["support"].monitoring_allowed is False and s.queues["vip"].monitoring_allowed
    assert load_settings(cfg, port=7000).port == 7000


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("prot = 1\n")
    with pytest.raises(ValidationError, match="prot"):
        load_settings(cfg)


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_users_file_with_a_custom_profile(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"users{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(USERS))
    else:
        lines = []
        for p in USERS["profiles"]:
            lines += ["[[profiles]]", f'name = "{p["name"]}"', f"permissions = {json.dumps(p['permissions'])}"]
        for u in USERS["users"]:
            lines += ["[[users]]", *(f'{k} = "{v}"' for k, v in u.items())]
        path.write_text("\n".join(lines) + "\n")
    directory = load_directory(path)
    assert directory.by_token("tok-qa").profile == "QualityListener"
    assert directory.by_token("agent1") is None  # the demo users are not mixed in
    h = Harness()
    h.core = SignalingCore(Settings(), directory, clock=h.clock)
    _, _, call_id = start_call(h, customer="tok-bob", agent="tok-ann")
    qa = h.client("tok-qa")
    assert qa.request("SUBSCRIBE", event="agents")["status"] == 200
    assert qa.request("INVITE", to=f"call:{call_id}")["status"] == 200
    r = qa.request("INFO", call_id=call_id, action="mode", mode="coach")
    assert r["status"] == 403 and "QualityListener lacks realtime_barge" in r["reason"]
    assert h.legs_of(call_id)["qa"].mode.value == "monitor"


def test_profile_granting_barge_without_monitor_is_refused(tmp_path: Path) -> None:
    bad = {"profiles": [{"name": "Odd", "permissions": ["realtime_barge"]}], "users": []}
    path = tmp_path / "users.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValidationError, match="realtime_barge requires realtime_monitor"):
        load_directory(path)


def test_users_file_with_unknown_profile_or_duplicate_token(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"profiles": [], "users": [USERS["users"][0]]}))
    with pytest.raises(ValidationError, match="unknown profile"):
        load_directory(path)
    dup = {"profiles": USERS["profiles"], "users": [USERS["users"][0], {**USERS["users"][1], "token": "tok-ann"}]}
    path.write_text(json.dumps(dup))
    with pytest.raises(ValidationError, match="tokens must be unique"):
        load_directory(path)


def test_cli_parser() -> None:
    ap = build_parser()
    args = ap.parse_args(["serve", "--host", "127.0.0.1", "--port", "0", "--config", "x.toml"])
    assert (args.command, args.host, args.port, args.config) == ("serve", "127.0.0.1", 0, "x.toml")
    assert callable(args.func)
    defaults = ap.parse_args(["serve"])
    assert defaults.host is None and defaults.port is None  # settings decide: 127.0.0.1:8080
    with pytest.raises(SystemExit):
        ap.parse_args(["frobnicate"])
    assert "simulate" in ap._subparsers._group_actions[0].choices  # registered by simulator.cli
