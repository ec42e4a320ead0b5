"""What every node's `main` needs: ROS arguments kept away from argparse, and the choice of transport.

A node started by `ros2 launch` / `ros2 run` gets `--ros-args ...` appended and runs on rclpy; the same
entry point runs without ROS over DDS (`--transport dds`), where rclpy is not installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vla_policy_node.transport.base import Transport

if TYPE_CHECKING:
    from vla_policy_node.transport.rclpy_backend import LifecycleHandlers

TRANSPORT_CHOICES = ("auto", "rclpy", "dds")


def strip_ros_args(argv: Sequence[str]) -> list[str]:
    """argv without `--ros-args ... [--]` blocks (what ros2 launch appends), for argparse."""
    out: list[str] = []
    inside = False
    for arg in argv:
        if arg == "--ros-args":
            inside = True
        elif inside and arg == "--":
            inside = False
        elif not inside:
            out.append(arg)
    return out


def use_rclpy(choice: str) -> bool:
    """auto: rclpy when it is importable (a sourced ROS 2 install), else DDS."""
    if choice not in TRANSPORT_CHOICES:
        raise ValueError(f"transport must be one of {TRANSPORT_CHOICES}, got {choice!r}")
    if choice == "auto":
        return importlib.util.find_spec("rclpy") is not None
    return choice == "rclpy"


def make_transport(choice: str, node_name: str, argv: Sequence[str], program: str,
                   lifecycle: LifecycleHandlers | None = None) -> Transport:
    """A transport for one node: rclpy (ROS arguments in argv applied; a managed node when `lifecycle` is
    given) or a DDS participant (which has no lifecycle: the caller drives the transitions itself). Either
    way the process's log records reach /rosout under the node's name, as a ROS node's do."""
    if use_rclpy(choice):
        from vla_policy_node.transport.rclpy_backend import RclpyTransport

        return RclpyTransport.create(node_name, args=[program, *argv], lifecycle=lifecycle, forward_logging=True)
    from vla_policy_node.transport.dds import DdsTransport
    from vla_policy_node.transport.dds_config import DdsConfig

    transport = DdsTransport(DdsConfig(node_name=node_name))
    transport.log_to_rosout()
    return transport
