"""Where interface definitions come from: our `vla_msgs` package files, plus the few upstream types the
rosbags Jazzy store lacks.

`src/vla_msgs/msg/*.msg` and `srv/*.srv` are the single source of truth; this module only finds and
reads them. Lookup order: `$VLA_MSGS_DIR`, the ament index (an installed colcon workspace), then the
source tree next to this package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

VLA_MSGS_PACKAGE = "vla_msgs"
VLA_MSGS_DIR_ENV = "VLA_MSGS_DIR"

# Upstream ROS 2 types that the rosbags ROS2_JAZZY store does not ship. They are not ours: the text is the
# field list of the released package (comments dropped; the RIHS01 hash depends on fields only).
# control_msgs/msg/JointJog: ros-controls/control_msgs (humble/jazzy branches), used by MoveIt Servo.
UPSTREAM_MESSAGES: dict[str, str] = {
    "control_msgs/msg/JointJog": (
        "std_msgs/Header header\n"
        "string[] joint_names\n"
        "float64[] displacements\n"
        "float64[] velocities\n"
        "float64 duration\n"
    ),
}

# The parameter services every ROS 2 node offers (rcl_interfaces, Jazzy), for DDS nodes that answer `ros2 param`.
# The nested message types (Parameter, ParameterValue, ParameterDescriptor, ...) are in the rosbags store.
UPSTREAM_SERVICES: dict[str, str] = {
    "rcl_interfaces/srv/DescribeParameters": "string[] names\n---\nParameterDescriptor[] descriptors\n",
    "rcl_interfaces/srv/GetParameterTypes": "string[] names\n---\nuint8[] types\n",
    "rcl_interfaces/srv/GetParameters": "string[] names\n---\nParameterValue[] values\n",
    "rcl_interfaces/srv/ListParameters": (
        "uint64 DEPTH_RECURSIVE=0\nstring[] prefixes\nuint64 depth\n---\nListParametersResult result\n"),
    "rcl_interfaces/srv/SetParameters": "Parameter[] parameters\n---\nSetParametersResult[] results\n",
    "rcl_interfaces/srv/SetParametersAtomically": "Parameter[] parameters\n---\nSetParametersResult result\n",
}


class InterfaceNotFoundError(FileNotFoundError):
    """The vla_msgs definitions could not be located."""


@dataclass(frozen=True)
class InterfaceDefinitions:
    """Raw .msg/.srv texts of one package, keyed by full ROS 2 type name."""

    package: str
    messages: dict[str, str] = field(default_factory=dict)  # "vla_msgs/msg/ActionChunk" -> text
    services: dict[str, str] = field(default_factory=dict)  # "vla_msgs/srv/SetPaused" -> text


def _ament_share_dir(package: str) -> Path | None:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(package))
    except (PackageNotFoundError, ValueError, LookupError):
        return None


def find_interface_dir(package: str = VLA_MSGS_PACKAGE) -> Path:
    """Directory holding `msg/` and `srv/` of `package` (see the module docstring for the lookup order)."""
    candidates: list[Path] = []
    env = os.environ.get(VLA_MSGS_DIR_ENV)
    if env and package == VLA_MSGS_PACKAGE:
        candidates.append(Path(env))
    share = _ament_share_dir(package)
    if share is not None:
        candidates.append(share)
    here = Path(__file__).resolve()
    # Source tree: src/vla_policy_node/vla_policy_node/msgs/definitions.py -> src/<package>
    candidates.extend(parent / package for parent in here.parents[:5])
    for candidate in candidates:
        if (candidate / "msg").is_dir() or (candidate / "srv").is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise InterfaceNotFoundError(f"cannot find the {package} interface files (msg/, srv/); tried: {tried}")


def load_interface_definitions(directory: Path | None = None, package: str = VLA_MSGS_PACKAGE) -> InterfaceDefinitions:
    """Read every `msg/*.msg` and `srv/*.srv` below `directory` (default: `find_interface_dir(package)`)."""
    root = Path(directory) if directory is not None else find_interface_dir(package)
    messages = {
        f"{package}/msg/{path.stem}": path.read_text(encoding="utf-8") for path in sorted(root.glob("msg/*.msg"))
    }
    services = {
        f"{package}/srv/{path.stem}": path.read_text(encoding="utf-8") for path in sorted(root.glob("srv/*.srv"))
    }
    if not messages and not services:
        raise InterfaceNotFoundError(f"no .msg or .srv files under {root}")
    return InterfaceDefinitions(package=package, messages=messages, services=services)


def split_service_text(text: str, srvtype: str = "") -> tuple[str, str]:
    """Split a .srv text at its `---` line into (request, response) message texts."""
    request: list[str] = []
    response: list[str] = []
    target = request
    separators = 0
    for line in text.splitlines():
        if line.strip() == "---":
            separators += 1
            target = response
            continue
        target.append(line)
    if separators != 1:
        raise ValueError(f"service definition {srvtype or '<text>'} needs exactly one '---' line, found {separators}")
    return "\n".join(request) + "\n", "\n".join(response) + "\n"
