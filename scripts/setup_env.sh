#!/usr/bin/env bash
# Creates (or refreshes) the repository's virtual environment in .venv with everything the demo and tests need.
# Idempotent: re-installs only when the requirements changed. torch is installed first and pinned, because a bare
# `torch` requirement would pull the multi-GB CUDA build on a CPU machine (on a CUDA machine the same pin takes CUDA).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLA_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.vla-installed"
WANT="$(cat "$ROOT/scripts/setup_env.sh" "$ROOT/src/vla_policy_node/setup.py" | sha256sum | cut -d' ' -f1)"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -e "$ROOT/src/vla_policy_node[model,ros,test]"
  echo "$WANT" > "$STAMP"
fi
