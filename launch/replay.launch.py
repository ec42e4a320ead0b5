"""Replay a rosbag through the policy on sim time: `ros2 bag play --clock` + the robot's launch file.

    ros2 launch vla_bringup replay.launch.py bag:=<bag dir> robot:=franka_fr3 checkpoint:=<dir or hub id>
Robot launch arguments (instruction, dry_run, rviz, ...) pass through. Arguments: config/README.md.
"""

from vla_bringup.launch_common import replay_launch_description


def generate_launch_description():
    return replay_launch_description()
