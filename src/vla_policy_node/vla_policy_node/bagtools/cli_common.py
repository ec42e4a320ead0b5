"""Argument helpers the bag tools' command lines share."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vla_policy_node.spec.embodiment import ConfigError, Embodiment, load_embodiment

_REPO_ROBOTS = Path(__file__).resolve().parents[4] / "config" / "robots"


def robot_config_path(robot: str) -> Path:
    """A robot YAML path, or a robot name looked up in the installed vla_bringup share, then the source tree."""
    path = Path(robot)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("vla_bringup")) / "config" / "robots")
    except (ImportError, LookupError):
        pass
    candidates.append(_REPO_ROBOTS)
    for directory in candidates:
        if (directory / f"{robot}.yaml").is_file():
            return directory / f"{robot}.yaml"
    known = sorted(p.stem for d in candidates if d.is_dir() for p in d.glob("*.yaml"))
    raise ConfigError(f"robot {robot!r}: no such YAML file or built-in robot (built-in: {known})")


def load_robot(robot: str) -> Embodiment:
    return load_embodiment(robot_config_path(robot))


def add_robot_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot", required=True,
                        help="robot config: a YAML path or a built-in name (sim_arm, franka_fr3, ur5e, so101)")


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="[%(name)s] %(levelname)s: %(message)s")
