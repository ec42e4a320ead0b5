"""VLA policy on Franka Research 3 (franka_ros2 fr3_arm_controller, RealSense cameras): policy node, command mux, rviz.

    ros2 launch vla_bringup franka_fr3.launch.py checkpoint:=<dir or hub id> instruction:="..." [dry_run:=false]
Arguments: --show-args, or config/README.md.
"""

from vla_bringup.launch_common import robot_launch_description


def generate_launch_description():
    return robot_launch_description("franka_fr3")
