"""VLA policy on the simulated 6-joint arm of the demo: policy node, command mux, rviz.

    ros2 launch vla_bringup sim_arm.launch.py checkpoint:=<dir or hub id> instruction:="..." [dry_run:=false]
Arguments: --show-args, or config/README.md.
"""

from vla_bringup.launch_common import robot_launch_description


def generate_launch_description():
    return robot_launch_description("sim_arm", device="cpu")
