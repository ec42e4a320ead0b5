"""Every robot launch file under `ros2 launch`, through launch_testing's runner (`launch_test`, as ROS packages
run their *.test.py): see launch/robot_system.test.py for what is checked. The runs happen in the background
(test/ros2/conftest.py's LaunchPool, started right after the colcon build); each test here collects one."""

from __future__ import annotations

import pytest

from test.ros2.conftest import ROBOTS, LaunchPool


@pytest.mark.parametrize("robot", ROBOTS)
def test_robot_launch_file(robot: str, robot_launches: LaunchPool) -> None:
    outcome = robot_launches.result(robot)
    assert outcome.returncode == 0, f"launch_test {robot}: exit {outcome.returncode}\n{outcome.tail()}"
