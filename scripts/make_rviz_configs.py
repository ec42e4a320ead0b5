#!/usr/bin/env python3
"""Write config/rviz/<robot>.rviz for every config/robots/<robot>.yaml (one layout, no hand-copied files).

Each view: fixed frame = the robot's base_frame; the robot model and a translucent ghost of the predicted
state (TF prefix `predicted`, published by ghost_state_publisher), both from /robot_description; the predicted
end-effector path (/vla/predicted_path); TF; one image panel per camera of the robot YAML.

    python scripts/make_rviz_configs.py            # all robots
    python scripts/make_rviz_configs.py ur5e       # one robot
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from vla_policy_node.spec import Embodiment, load_embodiment

REPO = Path(__file__).resolve().parent.parent
GHOST_PREFIX = "predicted"
PATH_TOPIC = "/vla/predicted_path"
PATH_NAMESPACE = "vla_path"


def _topic(name: str, *, reliable: bool = True, latched: bool = False) -> dict[str, Any]:
    return {
        "Depth": 5,
        "Durability Policy": "Transient Local" if latched else "Volatile",
        "History Policy": "Keep Last",
        "Reliability Policy": "Reliable" if reliable else "Best Effort",
        "Value": name,
    }


def _robot_model(name: str, alpha: float, tf_prefix: str) -> dict[str, Any]:
    return {
        "Alpha": alpha,
        "Class": "rviz_default_plugins/RobotModel",
        "Collision Enabled": False,
        "Description File": "",
        "Description Source": "Topic",
        "Description Topic": _topic("/robot_description", latched=True),
        "Enabled": True,
        "Links": {
            "All Links Enabled": True,
            "Expand Joint Details": False,
            "Expand Link Details": False,
            "Expand Tree": False,
            "Link Tree Style": "Links in Alphabetic Order",
        },
        "Mass Properties": {"Inertia": False, "Mass": False},
        "Name": name,
        "TF Prefix": tf_prefix,
        "Update Interval": 0,
        "Value": True,
        "Visual Enabled": True,
    }


def _image(name: str, topic: str) -> dict[str, Any]:
    return {
        "Class": "rviz_default_plugins/Image",
        "Enabled": True,
        "Max Value": 1,
        "Median window": 5,
        "Min Value": 0,
        "Name": name,
        "Normalize Range": True,
        "Topic": _topic(topic, reliable=False),  # best effort receives from reliable and best-effort cameras
        "Value": True,
    }


def camera_display_name(camera: str) -> str:
    return f"Camera {camera}"


def rviz_config(robot: Embodiment) -> dict[str, Any]:
    displays: list[dict[str, Any]] = [
        {
            "Alpha": 0.5,
            "Cell Size": 0.1,
            "Class": "rviz_default_plugins/Grid",
            "Color": "160; 160; 164",
            "Enabled": True,
            "Line Style": {"Line Width": 0.03, "Value": "Lines"},
            "Name": "Grid",
            "Normal Cell Count": 0,
            "Offset": {"X": 0, "Y": 0, "Z": 0},
            "Plane": "XY",
            "Plane Cell Count": 20,
            "Reference Frame": "<Fixed Frame>",
            "Value": True,
        },
        _robot_model("Robot", 1.0, ""),
        _robot_model("Predicted state", 0.35, GHOST_PREFIX),
        {
            "Class": "rviz_default_plugins/MarkerArray",
            "Enabled": True,
            "Name": "Predicted path",
            "Namespaces": {PATH_NAMESPACE: True},
            "Topic": _topic(PATH_TOPIC),
            "Value": True,
        },
        {
            "Class": "rviz_default_plugins/TF",
            "Enabled": False,
            "Frame Timeout": 15,
            "Marker Scale": 0.2,
            "Name": "TF",
            "Show Arrows": False,
            "Show Axes": True,
            "Show Names": False,
            "Update Interval": 0,
            "Value": False,
        },
        *(_image(camera_display_name(cam.name), cam.topic) for cam in robot.cameras),
    ]
    window = {
        "Displays": {"collapsed": False},
        "Height": 1000,
        "Hide Left Dock": False,
        "Hide Right Dock": False,
        "Selection": {"collapsed": False},
        "Time": {"collapsed": False},
        "Tool Properties": {"collapsed": False},
        "Views": {"collapsed": False},
        "Width": 1600,
        "X": 60,
        "Y": 60,
        **{camera_display_name(cam.name): {"collapsed": False} for cam in robot.cameras},
    }
    return {
        "Panels": [
            {
                "Class": "rviz_common/Displays",
                "Help Height": 78,
                "Name": "Displays",
                "Property Tree Widget": {"Expanded": ["/Global Options1"], "Splitter Ratio": 0.5},
                "Tree Height": 500,
            },
            {"Class": "rviz_common/Selection", "Name": "Selection"},
            {"Class": "rviz_common/Tool Properties", "Expanded": None, "Name": "Tool Properties",
             "Splitter Ratio": 0.5886790156364441},
            {"Class": "rviz_common/Views", "Expanded": ["/Current View1"], "Name": "Views", "Splitter Ratio": 0.5},
            {"Class": "rviz_common/Time", "Experimental": False, "Name": "Time", "SyncMode": 0, "SyncSource": ""},
        ],
        "Visualization Manager": {
            "Class": "",
            "Displays": displays,
            "Enabled": True,
            "Global Options": {"Background Color": "48; 48; 48", "Fixed Frame": robot.base_frame, "Frame Rate": 30},
            "Name": "root",
            "Tools": [
                {"Class": "rviz_default_plugins/Interact", "Hide Inactive Objects": True},
                {"Class": "rviz_default_plugins/MoveCamera"},
                {"Class": "rviz_default_plugins/Select"},
                {"Class": "rviz_default_plugins/FocusCamera"},
                {"Class": "rviz_default_plugins/Measure", "Line color": "128; 128; 0"},
            ],
            "Transformation": {"Current": {"Class": "rviz_default_plugins/TF"}},
            "Value": True,
            "Views": {
                "Current": {
                    "Class": "rviz_default_plugins/Orbit",
                    "Distance": 2.0,
                    "Enable Stereo Rendering": {"Stereo Eye Separation": 0.06, "Stereo Focal Distance": 1,
                                                "Swap Stereo Eyes": False, "Value": False},
                    "Focal Point": {"X": 0.0, "Y": 0.0, "Z": 0.3},
                    "Focal Shape Fixed Size": True,
                    "Focal Shape Size": 0.05,
                    "Invert Z Axis": False,
                    "Name": "Current View",
                    "Near Clip Distance": 0.01,
                    "Pitch": 0.5,
                    "Target Frame": "<Fixed Frame>",
                    "Value": "Orbit (rviz)",
                    "Yaw": 0.8,
                },
                "Saved": None,
            },
        },
        "Window Geometry": window,
    }


def write(robot_yaml: Path) -> Path:
    robot = load_embodiment(robot_yaml)
    out = REPO / "config" / "rviz" / f"{robot.name}.rviz"
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# rviz2 view for {robot.name}, generated by scripts/make_rviz_configs.py from "
              f"config/robots/{robot_yaml.name}\n")
    out.write_text(header + yaml.safe_dump(rviz_config(robot), sort_keys=True, default_flow_style=False, width=120))
    return out


def main(argv: list[str]) -> int:
    robots = sorted((REPO / "config" / "robots").glob("*.yaml"))
    if argv:
        robots = [REPO / "config" / "robots" / f"{name}.yaml" for name in argv]
    for path in robots:
        print(write(path).relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
