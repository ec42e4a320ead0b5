#!/usr/bin/env bash
# The main job on the built-in default: sets up .venv, then runs the demo. Extra arguments go to the demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec .venv/bin/python -m vla_policy_node.cli.demo "$@"
