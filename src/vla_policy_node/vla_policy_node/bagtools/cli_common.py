"""Argument helpers the bag tools' command lines share."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vla_policy_node.spec.embodiment import ConfigError, Embodiment, load_embodiment
from vla_policy_node.spec.repo_files import REPO_CONFIG

_REPO_ROBOTS = REPO_CONFIG / "robots"


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
    parser.add_argument("--camera-topics", dest="camera_topics", default="", metavar="NAME:TOPIC,...",
                        help="cameras to use and their topics instead of the robot config's, e.g. "
                             "scene:/camera/color/image_raw,wrist:/camera/color/image_raw (a camera may be fed "
                             "from another camera's topic)")
    parser.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                        help="read/write one of the robot config's topics on another name (repeatable)")


def robot_from_args(args: argparse.Namespace) -> Embodiment:
    """The robot config of --robot with --camera-topics and --remap applied."""
    from vla_policy_node.spec.remap import remap_embodiment

    return remap_embodiment(load_robot(args.robot), getattr(args, "camera_topics", ""), getattr(args, "remap", []))


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="[%(name)s] %(levelname)s: %(message)s")
