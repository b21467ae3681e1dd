"""The wheel a user would install: built from the repository, installed into an empty directory and
imported from somewhere else, so nothing is picked up from the source tree."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATIC = sorted(p.name for p in (ROOT / "signaling" / "static").iterdir() if p.is_file())  # every file the client needs


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_repository(tmp_path: Path) -> None:
    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(wheels), str(ROOT),
        cwd=tmp_path)
    (wheel,) = wheels.glob("bargein-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for f in STATIC:
        assert f"bargein/signaling/static/{f}" in names, f"{f} missing from the wheel"
    assert any(n.startswith("bargein/mixer/_kernel") and n.endswith(".so") for n in names), "no C kernel"
    assert not any(n.startswith(("tests/", "helpers/", "mixer/", "signaling/", "simulator/")) for n in names)

    run(sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel),
        cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": str(target)}  # dependencies come from this venv
    where = run(sys.executable, "-c", "import bargein.mixer, bargein.signaling.server, bargein.simulator, "
                "bargein.signaling.client; from bargein.mixer import kernel; from bargein.signaling import server; "
                "print(bargein.__file__); print(kernel.available()); print(server.STATIC)", cwd=elsewhere, env=env)
    module, kernel, static = where.split()
    assert Path(module).is_relative_to(target), f"imported {module}, not the installed wheel"
    assert kernel == "True", "the C kernel did not load from the wheel"
    assert sorted(p.name for p in Path(static).iterdir()) == sorted(STATIC)
    out = run(sys.executable, "-m", "bargein.cli", "--help", cwd=elsewhere, env=env)
    assert "bargein serve" in out and "bargein simulate" in out
