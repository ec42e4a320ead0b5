"""Argument helpers the bag tools' command lines share."""

from __future__ import annotations

import argparse
import logging

from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.robot_configs import ROBOT_CONFIG_HELP, load_robot


def add_robot_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot", required=True, help=ROBOT_CONFIG_HELP)
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
