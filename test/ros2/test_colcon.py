"""The README's ROS section as a ROS user types it: colcon build of src/ against the real Jazzy, then the
interfaces, executables and share directories it installs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from test.ros2.conftest import REPO, Workspace, readme_ros_block, ros2_cli

INTERFACES = sorted(
    f"vla_msgs/{path.parent.name}/{path.stem}"
    for kind in ("msg", "srv", "action") for path in (REPO / "src" / "vla_msgs" / kind).glob(f"*.{kind}")
)
EXECUTABLES = ("policy_node", "command_mux_node", "fake_arm_driver", "sim_arm_driver", "ghost_state_publisher",
               "realsense_camera_node", "vla_record", "vla_replay_test", "vla_bag_to_dataset")


def test_readme_block_builds_all_three_packages(workspace: Workspace) -> None:
    assert any(line.startswith("python -m colcon build") for line in readme_ros_block())
    for package in ("vla_msgs", "vla_policy_node", "vla_bringup"):
        assert (workspace.root / "install" / package).is_dir(), package
    assert "Summary: 3 packages finished" in workspace.build_log


@pytest.mark.parametrize("interface", INTERFACES)
def test_every_interface_is_generated(workspace: Workspace, interface: str) -> None:
    kind = interface.split("/")[1]
    shown = ros2_cli(workspace.env, "interface", "show", interface)
    source = (REPO / "src" / "vla_msgs" / kind / f"{interface.rsplit('/', 1)[1]}.{kind}").read_text()
    fields = [line.split()[1] for line in source.splitlines()
              if line.strip() and not line.startswith(("#", "---")) and "=" not in line]
    for field in fields:
        assert f" {field}" in shown, f"{interface}: {field} missing from `ros2 interface show`"


def test_python_interfaces_import_in_the_venv(workspace: Workspace) -> None:
    code = ("from vla_msgs.action import ExecuteInstruction; from vla_msgs.msg import PolicyStatus; "
            "from vla_msgs.srv import SetActuation; print(ExecuteInstruction.Goal().time_limit)")
    result = subprocess.run([f"{workspace.root}/.venv/bin/python", "-c", code], env=workspace.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "0.0", result.stderr


def test_ros2_run_finds_every_executable(workspace: Workspace) -> None:
    listed = ros2_cli(workspace.env, "pkg", "executables", "vla_policy_node")
    for executable in EXECUTABLES:
        assert f"vla_policy_node {executable}" in listed
    shebang = (workspace.root / "install/vla_policy_node/lib/vla_policy_node/policy_node").read_text().split("\n")[0]
    assert ".venv/bin/python" in shebang  # colcon ran from the venv: the nodes get its torch, mujoco, ...
    assert "usage: policy_node" in ros2_cli(workspace.env, "run", "vla_policy_node", "policy_node", "--help")


def test_bringup_installs_launch_and_config_into_its_share(workspace: Workspace) -> None:
    share = workspace.share("vla_bringup")
    for top in ("launch", "config"):
        for path in (REPO / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                assert (share / path.relative_to(REPO)).is_file(), path.relative_to(REPO)
    shown = ros2_cli(workspace.env, "launch", "vla_bringup", "franka_fr3.launch.py", "--show-args")
    for argument in ("checkpoint", "dry_run", "rviz", "autostart", "mux_config"):
        assert f"'{argument}':" in shown
    has_rviz2 = subprocess.run(["ros2", "pkg", "prefix", "rviz2"], env=workspace.env, capture_output=True,
                               timeout=60).returncode == 0
    default = "true" if has_rviz2 else "false"
    assert f"(default: '{default}')" in shown.split("'rviz':")[1].split("'autostart'")[0]


def test_our_type_hashes_equal_rosidls(workspace: Workspace) -> None:
    """The RIHS01 hashes the DDS transport announces (USER_DATA typehash=) and bags record are rosidl's: every
    vla_msgs type colcon generated, the rcl_interfaces parameter services DDS nodes serve, the discovery type."""
    import json

    from vla_policy_node.msgs.typestore import default_typestore

    store = default_typestore()
    files = sorted(workspace.share("vla_msgs").glob("*/*.json"))
    share = Path(os.environ["AMENT_PREFIX_PATH"].split(":")[-1]) / "share"
    files += [share / f"rcl_interfaces/srv/{name}.json" for name in (
        "DescribeParameters", "GetParameterTypes", "GetParameters", "ListParameters", "SetParameters",
        "SetParametersAtomically")]
    files += [share / "rmw_dds_common/msg/ParticipantEntitiesInfo.json", share / "rcl_interfaces/msg/Log.json"]
    checked = 0
    for path in files:
        for entry in json.loads(path.read_text())["type_hashes"]:
            name = entry["type_name"]
            if name.endswith("_FeedbackMessage") or name.endswith(("_SendGoal", "_GetResult")) or "/action/" in name:
                continue  # actions are rclpy's alone (the DDS transport has none)
            assert store.hash_rihs01(name) == entry["hash_string"], name
            checked += 1
    assert checked > 40
