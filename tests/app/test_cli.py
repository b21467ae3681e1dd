"""The ``bargein`` command as a new user meets it: help texts, and the composition root's wiring."""

import pytest
from bargein.signaling.settings import Settings

from bargein.cli import build_parser, main


def help_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])  # exits while parsing, before logging is configured
    assert done.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    out = help_of([], capsys)
    assert "`" not in out
    assert "bargein serve" in out and "bargein simulate" in out


def test_serve_help_describes_the_server_and_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    out = help_of(["serve"], capsys)
    assert "`" not in out and "/ws" in out and "--config" in out
    for name, field in Settings.model_fields.items():
        env = f"BARGEIN_{name.upper()}"
        nested = getattr(field.annotation, "model_fields", None)
        names = [f"{env}__{sub.upper()}" for sub in nested] if nested else [env]
        for variable in names:
            assert variable in out, variable
    assert "BARGEIN_LOG_LEVEL" in out


def test_simulate_help_is_for_users_not_developers(capsys: pytest.CaptureFixture[str]) -> None:
    out = help_of(["simulate"], capsys)
    assert "`" not in out and "register(" not in out and "subparsers" not in out
    assert "routing table" in out and "exit status" in out


def test_negative_demo_calls_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["serve", "--demo-calls", "-1"])
    assert args.func(args) == 2  # not main(): it would point the suite's logging at this test's capture
    assert "--demo-calls" in capsys.readouterr().err


def test_parser_has_both_commands() -> None:
    ap = build_parser()
    assert ap.parse_args(["serve", "--port", "0"]).port == 0
    assert ap.parse_args(["simulate", "--calls", "3"]).calls == 3
