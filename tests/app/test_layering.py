"""The packages' arrows point one way (simulator -> signaling -> mixer; bargein/ wires them) and every
import uses the bargein.* namespace: read from the source, so a new module cannot slip past."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"bargein": ROOT / "bargein", "mixer": ROOT / "mixer", "signaling": ROOT / "signaling",
            "simulator": ROOT / "simulator"}
MAY_IMPORT = {"mixer": set(), "signaling": {"mixer"}, "simulator": {"mixer", "signaling"},
              "bargein": {"mixer", "signaling", "simulator"}}


def imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def sources() -> list[tuple[str, Path]]:
    return [(pkg, f) for pkg, d in PACKAGES.items() for f in sorted(d.rglob("*.py"))]


@pytest.mark.parametrize(("package", "path"), sources(), ids=lambda x: str(x).removeprefix(str(ROOT) + "/"))
def test_imports_point_one_way_and_use_the_namespace(package: str, path: Path) -> None:
    for name in imports(path):
        top = name.split(".")[0]
        assert top not in ("mixer", "signaling", "simulator"), f"{path.name}: bare import {name!r}"
        if top == "bargein" and name.count("."):
            target = name.split(".")[1]
            if target in MAY_IMPORT and package != "bargein":
                assert target in MAY_IMPORT[package] | {package}, f"{package} must not import {name}"
        assert not name.startswith("helpers"), f"{path.name}: product code imports the test helpers"


def test_no_test_helper_in_a_product_package() -> None:
    for _, path in sources():
        text = path.read_text()
        assert "class FakeClock" not in text and "class Harness" not in text, path
