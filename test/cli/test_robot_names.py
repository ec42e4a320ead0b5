"""Every command and node finds a robot config by built-in name as by path (`--robot sim_arm`,
`--robot-config sim_arm`), and an unknown name is one line that lists the built-in ones."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vla_policy_node.spec.embodiment import ConfigError
from vla_policy_node.spec.repo_files import SIM_ARM_CONFIG
from vla_policy_node.spec.robot_configs import load_robot, robot_config_path


def test_a_built_in_name_and_its_path_load_the_same_robot():
    assert robot_config_path("sim_arm") == SIM_ARM_CONFIG
    assert load_robot("sim_arm") == load_robot(SIM_ARM_CONFIG)


def test_an_unknown_name_says_which_robots_are_built_in():
    with pytest.raises(ConfigError, match=r"no such YAML file or built-in robot \(built-in: \[.*'sim_arm'.*\]\)"):
        robot_config_path("sim_armm")


def test_a_node_takes_a_built_in_robot_name():
    """The fake arm driver with `--robot-config sim_arm` gets past the robot config (then fails, as asked, on a
    sensor fault it cannot parse): before, a name was 'robot config not found: sim_arm'."""
    result = subprocess.run([sys.executable, "-m", "vla_policy_node.nodes.fake_arm_driver", "--transport", "dds",
                             "--robot-config", "sim_arm", "--sensor-fault", "{not json"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--sensor-fault" in result.stderr and "robot" not in result.stderr.lower(), result.stderr
