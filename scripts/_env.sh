# Shared by scripts/run and scripts/test: make .venv and install the project into it (idempotent).
# INSTALL_EXTRAS picks the extras: scripts/run installs the plain package (""), scripts/test
# "dev,bench"; unset means "dev,bench" (a developer sourcing this file wants the tools).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EXTRAS="${INSTALL_EXTRAS-dev,bench}"
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
# One stamp per extras set, holding the hash of the packaging inputs it was installed from: switching
# between scripts/run and scripts/test reinstalls nothing once both sets are in (the dev,bench install
# contains the plain one, so it stamps both).
WANT="$(cat pyproject.toml setup.py mixer/_kernel.c signaling/_rtpfast.c signaling/_jitter.c | sha256sum | cut -d' ' -f1)"
stamp() { echo ".venv/.bargein-installed${1:+-$1}"; }
fresh() { [ -f "$(stamp "$1")" ] && [ "$(cat "$(stamp "$1")")" = "$WANT" ]; }
if ! fresh "$EXTRAS" || ! ls mixer/_kernel*.so signaling/_rtpfast*.so >/dev/null 2>&1; then
    echo "==> installing bargein${EXTRAS:+[$EXTRAS]} and its dependencies into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".${EXTRAS:+[$EXTRAS]}"
    echo "$WANT" > "$(stamp "$EXTRAS")"
    [ -z "$EXTRAS" ] || echo "$WANT" > "$(stamp "")"
fi
