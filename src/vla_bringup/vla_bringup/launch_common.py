"""What every launch file of this package shares, so that launch/<robot>.launch.py is three lines.

    robot_launch_description("franka_fr3")   policy node, command mux, rviz (+ ghost) for one robot
    replay_launch_description()              `ros2 bag play --clock` + a robot's launch file on sim time

The argument list is documented in config/README.md (and shown by `ros2 launch vla_bringup <file> --show-args`);
the tests read that table, this module's AST and what these functions build, so the three cannot drift apart.

A launch that fails leaves nothing behind: a missing rviz2 (asked for with rviz:=true) fails before any node
starts, and the policy node, the mux and the simulated driver are required (any of them ending ends the launch,
which stops the others).
"""

from __future__ import annotations

from pathlib import Path

import yaml
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    IncludeLaunchDescription,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
    Shutdown,
)
from launch.conditions import IfCondition, UnlessCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown as ShutdownEvent
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = "vla_bringup"
NODE_PACKAGE = "vla_policy_node"
ROBOTS = ("franka_fr3", "ur5e", "so101", "sim_arm")
CONTROLLER_TYPES = ("joint_trajectory", "forward_command", "servo_twist", "servo_pose")
BOOLEAN = ("true", "false")
STRATEGY_SETTINGS = ("auto", "synchronous", "ensemble", "rtc")  # the policy node's `strategy` parameter


def share_dir() -> Path:
    """share/vla_bringup of the install; the repository root when not installed (it has the same layout)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError):
        return Path(__file__).resolve().parents[3]


def rviz2_installed() -> bool:
    """Whether the ament index has rviz2 (the `rviz` argument's default)."""
    try:
        from ament_index_python.packages import get_package_share_directory

        get_package_share_directory("rviz2")
        return True
    except (ImportError, LookupError, ValueError):
        return False


def _require_rviz2(context) -> list:
    """rviz:=true without rviz2: fail before any node starts (the nodes come after this in the description)."""
    if context.launch_configurations.get("rviz") == "true" and not rviz2_installed():
        raise RuntimeError("rviz:=true but package 'rviz2' is not installed: install ros-$ROS_DISTRO-rviz2 or "
                           "launch with rviz:=false")
    return []


def robot_controller_type(robot: str) -> str:
    """controller.interface of the installed robot config (the default of the `controller_type` argument)."""
    path = share_dir() / "config" / "robots" / f"{robot}.yaml"
    return str(yaml.safe_load(path.read_text())["controller"]["interface"])


def _string(name: str) -> ParameterValue:
    """A launch argument as a string parameter: without value_type, launch would YAML-parse 'yes' into True."""
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def _flag(name: str) -> ParameterValue:
    return ParameterValue(LaunchConfiguration(name), value_type=bool)


def robot_arguments(robot: str, device: str = "cuda") -> list[DeclareLaunchArgument]:
    share = FindPackageShare(PACKAGE)
    return [
        DeclareLaunchArgument(
            "checkpoint",
            description="VLA checkpoint: a local checkpoint directory or a model-hub id (required)"),
        DeclareLaunchArgument(
            "instruction", default_value="",
            description="Language instruction given to the policy"),
        DeclareLaunchArgument(
            "dry_run", default_value="true", choices=BOOLEAN,
            description="true: the policy only publishes /vla/preview_command (rviz shows it, the arm gets "
                        "nothing from the policy); false: it publishes /vla/policy_command to the mux"),
        DeclareLaunchArgument(
            "controller_type", default_value=robot_controller_type(robot), choices=CONTROLLER_TYPES,
            description="How commands reach the arm; default: controller.interface of the robot config"),
        DeclareLaunchArgument(
            "robot_config", default_value=PathJoinSubstitution([share, "config", "robots", f"{robot}.yaml"]),
            description="Robot YAML (joints, limits, cameras, controller topic); default: the installed one"),
        DeclareLaunchArgument(
            "camera_topics", default_value="",
            description="Cameras and their topics instead of the robot YAML's, NAME:TOPIC,... (e.g. "
                        "scene:/camera/color/image_raw,wrist:/camera/color/image_raw feeds a missing wrist camera "
                        "from the scene camera); empty: the YAML's"),
        DeclareLaunchArgument(
            "remaps", default_value="",
            description="FROM:=TO,... the policy node reads/writes the robot YAML's topics on other names"),
        DeclareLaunchArgument(
            "strategy", default_value="auto", choices=STRATEGY_SETTINGS,
            description="Chunk execution strategy; auto: what the checkpoint's deployment.json recommends, else rtc"),
        DeclareLaunchArgument(
            "device", default_value=device,
            description="Torch device for the policy: cpu, cuda or cuda:<index>"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", choices=BOOLEAN,
            description="Use /clock (simulation or `ros2 bag play --clock`) instead of the wall clock"),
        DeclareLaunchArgument(
            "rviz", default_value="true" if rviz2_installed() else "false", choices=BOOLEAN,
            description="Start rviz2 with the robot's view (predicted path, ghost, cameras); default: true where "
                        "rviz2 is installed"),
        DeclareLaunchArgument(
            "autostart", default_value="true", choices=BOOLEAN,
            description="Configure and activate the policy node (a managed node) at start-up; false: drive it "
                        "with lifecycle transitions (/vla_policy/change_state)"),
        DeclareLaunchArgument(
            "mux", default_value="true", choices=BOOLEAN,
            description="Start the command mux (policy < teleop < e-stop) that drives the controller topic"),
        DeclareLaunchArgument(
            "mux_config", default_value=PathJoinSubstitution([share, "config", "mux.yaml"]),
            description="Command mux YAML (priorities, timeouts, locks)"),
    ]


def robot_nodes(robot: str) -> list[Node]:
    sim_time = _flag("use_sim_time")
    policy = Node(
        package=NODE_PACKAGE,
        executable="policy_node",
        name="vla_policy",
        output="screen",
        emulate_tty=True,
        parameters=[{
            "robot_config": _string("robot_config"),
            "checkpoint": _string("checkpoint"),
            "instruction": _string("instruction"),
            "dry_run": _flag("dry_run"),
            "controller_type": _string("controller_type"),
            "camera_topics": _string("camera_topics"),
            "remaps": _string("remaps"),
            "strategy": _string("strategy"),
            "device": _string("device"),
            "autostart": _flag("autostart"),
            "use_sim_time": sim_time,
        }],
        on_exit=Shutdown(reason="the policy node ended"),
    )
    mux = Node(
        package=NODE_PACKAGE,
        executable="command_mux_node",
        name="vla_command_mux",
        output="screen",
        emulate_tty=True,
        parameters=[{
            "robot_config": _string("robot_config"),
            "controller_type": _string("controller_type"),
            "mux_config": _string("mux_config"),
            "use_sim_time": sim_time,
        }],
        condition=IfCondition(LaunchConfiguration("mux")),
        on_exit=Shutdown(reason="the command mux ended"),
    )
    ghost = Node(
        package=NODE_PACKAGE,
        executable="ghost_state_publisher",
        name="vla_ghost_state_publisher",
        output="screen",
        parameters=[{"tf_prefix": "predicted", "use_sim_time": sim_time}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        output="log",
        arguments=["-d", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "rviz", f"{robot}.rviz"])],
        parameters=[{"use_sim_time": sim_time}],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return [policy, mux, ghost, rviz]


def robot_launch_description(robot: str, *, device: str = "cuda") -> LaunchDescription:
    """Policy node, command mux and rviz for one robot of config/robots (device: the `device` default)."""
    if robot not in ROBOTS:
        raise ValueError(f"unknown robot {robot!r}; robots: {ROBOTS}")
    extra = [sim_arm_driver_node()] if robot == "sim_arm" else []
    return LaunchDescription([*robot_arguments(robot, device), OpaqueFunction(function=_require_rviz2), *extra,
                              *robot_nodes(robot)])


def sim_arm_driver_node() -> Node:
    """The simulated arm's driver (MuJoCo): the joint states, cameras and controllers a real arm's driver gives.
    It runs the physics on the wall clock, so not on sim time: there (a replay) the bag is the robot."""
    return Node(
        package=NODE_PACKAGE,
        executable="sim_arm_driver",
        name="sim_arm_driver",
        output="screen",
        arguments=["--robot-config", LaunchConfiguration("robot_config")],
        condition=UnlessCondition(LaunchConfiguration("use_sim_time")),
        on_exit=Shutdown(reason="the simulated arm ended"),
    )


def _bag_play_ended(event, context) -> list:
    """The bag has played: shut the replay down. A `ros2 bag play` that failed (no such bag, a storage it cannot
    read; its own message is above) fails the launch instead: `ros2 launch` exits 1 naming it."""
    if event.returncode != 0 and not context.is_shutdown:  # not a bag play stopped by the launch's own Ctrl-C
        raise RuntimeError(f"ros2 bag play exited {event.returncode} (its error is above): nothing was replayed")
    return [LogInfo(msg="the bag has played: shutting the replay down"),
            EmitEvent(event=ShutdownEvent(reason="bag finished"))]


def replay_launch_description() -> LaunchDescription:
    """Replay a rosbag through the policy: bag play publishes /clock, the robot launch runs on sim time (the sim
    arm's live driver stays off: the bag is the robot). When the bag has played, the launch ends cleanly (sim
    time stops with /clock, so nothing would happen any more).

    The robot launch file's required argument (checkpoint) is forwarded explicitly, because launch checks an
    include's required arguments against what the include passes; the others (instruction, dry_run, rviz, ...)
    reach it as launch configurations from the command line.
    """
    bag_play = ExecuteProcess(
        cmd=["ros2", "bag", "play", LaunchConfiguration("bag"), "--clock", LaunchConfiguration("clock_hz"),
             "--rate", LaunchConfiguration("rate")],
        name="bag_play",
        output="screen",
    )
    robot_file = [FindPackageShare(PACKAGE), "/launch/", LaunchConfiguration("robot"), ".launch.py"]
    robot = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(robot_file),
        launch_arguments={"use_sim_time": "true", "checkpoint": LaunchConfiguration("checkpoint")}.items(),
    )
    return LaunchDescription([
        DeclareLaunchArgument(
            "bag", description="rosbag2 directory (or file) to replay (required)"),
        DeclareLaunchArgument(
            "checkpoint", description="VLA checkpoint: a local checkpoint directory or a model-hub id (required)"),
        DeclareLaunchArgument(
            "robot", default_value="sim_arm", choices=ROBOTS,
            description="Robot whose launch file runs the policy on the bag's topics"),
        DeclareLaunchArgument(
            "rate", default_value="1.0",
            description="Playback rate (ros2 bag play --rate)"),
        DeclareLaunchArgument(
            "clock_hz", default_value="200",
            description="Rate of /clock from ros2 bag play; keep it at or above the control rate"),
        bag_play,
        RegisterEventHandler(OnProcessExit(target_action=bag_play, on_exit=_bag_play_ended)),
        robot,
    ])
