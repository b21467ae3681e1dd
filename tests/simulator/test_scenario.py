"""Scenario files: TOML and JSON, flags win, unknown or invalid fields refused by name."""

import pytest
from bargein.simulator.cli import main
from bargein.simulator.scenario import ScenarioError, load_scenario


def test_toml_and_json_load(tmp_path):
    t = tmp_path / "s.toml"
    t.write_text('calls = 40\nseed = 9\n[handle_time]\ndistribution = "lognormal"\nmean_s = 90\n'
                 "[supervision]\nbarge_weight = 2.5\n")
    sc = load_scenario(t, {"duration_s": 5.0, "seed": None})
    assert (sc.calls, sc.seed, sc.duration_s) == (40, 9, 5.0)
    assert sc.handle_time.distribution == "lognormal" and sc.supervision.barge_weight == 2.5
    j = tmp_path / "s.json"
    j.write_text('{"calls": 3, "verification": {"every_ticks": 5}}')
    assert load_scenario(j, {"calls": 8}).calls == 8


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("calls = 10\ncals = 3\n", "cals"),
        ("[supervision]\nbarge_wieght = 1.0\n", "supervision.barge_wieght"),
        ("[handle_time]\ndistribution = \"pareto\"\n", "handle_time.distribution"),
        ("calls = -4\n", "calls"),
        ("[limits]\nmax_barging = 9\n", "limits"),
    ],
)
def test_invalid_field_is_refused_by_name(tmp_path, text, named):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_scenario(f)
    assert named in str(err.value)
    assert str(f) in str(err.value)


def test_cli_refuses_bad_scenario(tmp_path, capsys):
    f = tmp_path / "bad.toml"
    f.write_text("calls = 5\nsupervisors = 1\nmonitor_probablity = 0.4\n")
    assert main(["--scenario", str(f), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "monitor_probablity" in err and "unknown field" in err


def test_not_toml_is_refused(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("calls = = 3\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(f)
