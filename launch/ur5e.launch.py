"""VLA policy on UR5e through MoveIt Servo (end-effector twists): policy node, command mux, rviz.

    ros2 launch vla_bringup ur5e.launch.py checkpoint:=<dir or hub id> instruction:="..." [dry_run:=false]
Arguments: --show-args, or config/README.md.
"""

from vla_bringup.launch_common import robot_launch_description


def generate_launch_description():
    return robot_launch_description("ur5e")
