"""Files the repository ships beside the package (config/, checkpoints/), found from this file rather than from
the directory a command starts in: a default such as `config/robots/sim_arm.yaml` then works from anywhere in a
checkout installed in place (`pip install -e`, as scripts/setup_env.sh does). Under ROS, launch files name their
configs from the installed share directory instead."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[4]  # spec/, the package, src/vla_policy_node, src, the repository
REPO_CONFIG = REPO_ROOT / "config"
SIM_ARM_CONFIG = REPO_CONFIG / "robots" / "sim_arm.yaml"
