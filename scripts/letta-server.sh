#!/usr/bin/env bash
# Install (once, cached) and run a real Letta server for the Letta integration tests.
#
# Usage:
#   scripts/letta-server.sh install          # create the venv if it lacks letta 0.11.7
#   scripts/letta-server.sh start [PORT]     # install if needed, then run the server (foreground)
#   scripts/letta-server.sh python           # print the venv's python path
#
# The server runs in its own virtualenv, never in the project's: letta 0.11.7 pins versions of
# pydantic and other packages that conflict with chromadb and langgraph. The venv lives at
# ${SLEEPTIME_LETTA_VENV:-$HOME/.cache/sleeptime/letta-venv} so it is reused between runs.
# `start` uses a throwaway HOME (SQLite under $HOME/.letta) unless SLEEPTIME_LETTA_HOME is set.
set -euo pipefail

LETTA_VERSION="0.11.7"
VENV="${SLEEPTIME_LETTA_VENV:-$HOME/.cache/sleeptime/letta-venv}"
PYTHON_BIN="${SLEEPTIME_LETTA_PYTHON:-python3}"

# Drop pip's notes about unusable local index locations; keep real warnings and errors.
quiet() { grep -v "is ignored: it is neither a file nor a directory" || true; }

installed_version() {
    [ -x "$VENV/bin/python" ] || return 1
    "$VENV/bin/python" - <<'PY' 2>/dev/null
from importlib.metadata import version
print(version("letta"))
PY
}

install() {
    if [ "$(installed_version || true)" = "$LETTA_VERSION" ] && [ -x "$VENV/bin/letta" ]; then
        echo "letta $LETTA_VERSION already installed in $VENV" >&2
        return 0
    fi
    local start=$SECONDS
    echo "installing letta $LETTA_VERSION into $VENV ..." >&2
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON_BIN" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip 2>&1 | quiet >&2
    "$VENV/bin/python" -m pip install --quiet "letta[server,sqlite]==$LETTA_VERSION" "mcp[cli]<2" \
        2>&1 | quiet >&2
    echo "installed letta $LETTA_VERSION in $((SECONDS - start)) s" >&2
}

start() {
    local port="${1:-8283}"
    install
    local home="${SLEEPTIME_LETTA_HOME:-}"
    if [ -z "$home" ]; then
        home="$(mktemp -d -t letta-home.XXXXXX)"
        trap 'rm -rf "$home"' EXIT
    fi
    echo "starting letta server on 127.0.0.1:$port (HOME=$home)" >&2
    # Not exec: the EXIT trap must run to remove the temporary HOME.
    HOME="$home" "$VENV/bin/letta" server --host 127.0.0.1 --port "$port"
}

case "${1:-}" in
    install) install ;;
    start) shift; start "$@" ;;
    python) echo "$VENV/bin/python" ;;
    *) echo "usage: $0 {install|start [PORT]|python}" >&2; exit 2 ;;
esac
