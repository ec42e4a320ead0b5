"""VLA policy on SO-101 (ros2_control forward_command_controller): policy node, command mux, rviz.

    ros2 launch vla_bringup so101.launch.py checkpoint:=<dir or hub id> instruction:="..." [dry_run:=false]
Arguments: --show-args, or config/README.md.
"""

from vla_bringup.launch_common import robot_launch_description


def generate_launch_description():
    return robot_launch_description("so101")
