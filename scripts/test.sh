#!/usr/bin/env bash
# The test command: sets up .venv, lints, then runs the whole suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
cd "$ROOT"
.venv/bin/ruff check .
.venv/bin/python -m pytest test "$@"
