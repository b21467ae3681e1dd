# Shared by scripts/run and scripts/test: make .venv and install the project into it (idempotent).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bargein needs Python >= 3.11 (found $("$PY" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$PY" -m venv .venv
fi
# Reinstall only when the packaging inputs changed (or the C kernel was never built).
STAMP=.venv/.bargein-installed
WANT="$(cat pyproject.toml setup.py mixer/_kernel.c | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ] || ! ls mixer/_kernel*.so >/dev/null 2>&1; then
    echo "==> installing bargein and its dependencies into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[dev,bench]"
    echo "$WANT" > "$STAMP"
fi
