"""Is a real ROS 2 here? One answer for the whole suite: the `ros2` marker's skip reason and its summary line."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

DEFAULT_SETUP = Path("/opt/ros/jazzy/setup.bash")


def ros2_missing() -> str:
    """Why the real-ROS tests cannot run here ("" when they can): ROS sourced, rclpy importable, `ros2` on PATH."""
    distro = os.environ.get("ROS_DISTRO", "")
    if not distro:
        if DEFAULT_SETUP.is_file():
            return (f"ROS 2 is installed ({DEFAULT_SETUP.parent}) but not sourced: run scripts/test.sh, or "
                    f"`source {DEFAULT_SETUP}` before pytest")
        return f"ROS 2 not found (no sourced $ROS_DISTRO, no {DEFAULT_SETUP})"
    if importlib.util.find_spec("rclpy") is None:
        return f"ROS 2 {distro} is sourced but rclpy does not import in this Python"
    if shutil.which("ros2") is None:
        return f"ROS 2 {distro} is sourced but the `ros2` command is not on PATH"
    return ""
