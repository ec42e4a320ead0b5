"""Every robot launch file under `ros2 launch`, through launch_testing's runner (`launch_test`, as ROS packages
run their *.test.py): see launch/robot_system.test.py for what is checked."""

from __future__ import annotations

import subprocess
import sys

import pytest

from test.ros2.conftest import REPO

SYSTEM_TEST = REPO / "test" / "ros2" / "launch" / "robot_system.test.py"
ROBOTS = sorted(p.stem for p in (REPO / "config" / "robots").glob("*.yaml"))
SHIPPED = REPO / "checkpoints" / "sim_reach" / "checkpoint"  # what the README launches the sim arm with


@pytest.mark.parametrize("robot", ROBOTS)
def test_robot_launch_file(robot: str, ros_env: dict[str, str], tiny_checkpoints, tmp_path) -> None:
    if robot == "ur5e":
        pytest.skip("ur5e commands MoveIt Servo twists; the fake arm driver follows joint commands only")
    checkpoint = SHIPPED if robot == "sim_arm" else tiny_checkpoints[robot]
    env = dict(ros_env, VLA_TEST_ROBOT=robot, VLA_TEST_CHECKPOINT=str(checkpoint))
    result = subprocess.run([sys.executable, "-m", "launch_testing.launch_test", str(SYSTEM_TEST),
                             "--junit-xml", str(tmp_path / "junit.xml")],
                            env=env, capture_output=True, text=True, timeout=420, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"launch_test {robot}: exit {result.returncode}\n{output[-12000:]}"
