"""command_mux_node: policy < teleop < e-stop in front of the arm's controller, over ROS 2 (rclpy) or plain DDS.

    python -m vla_policy_node.nodes.command_mux_node --transport dds --robot-config config/robots/sim_arm.yaml \\
        [--mux-config config/mux.yaml]
    ros2 run vla_policy_node command_mux_node --ros-args -p robot_config:=... -p mux_config:=...   (or ros2 launch)

The ROS parameters (robot_config, controller_type, mux_config, ...) override the command line, over rclpy and
DDS alike; `ros2 param set` applies status_hz and velocity_scale (only lower) live and refuses the others.
See mux_runtime.py for topics and control/loop.py for the behaviour.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence

from vla_policy_node.control.mux_file import MuxFileError, load_mux_file
from vla_policy_node.msgs.commands import resolve_controller
from vla_policy_node.nodes.mux_runtime import MuxNodeParams, MuxRuntime, default_mux_config_path
from vla_policy_node.nodes.node_support import (
    Param,
    console_main,
    declare_parameters,
    node_clock,
    serve,
    watch_parameters,
)
from vla_policy_node.spec.cli import CliParser
from vla_policy_node.spec.embodiment import ConfigError
from vla_policy_node.spec.robot_configs import ROBOT_CONFIG_HELP, load_robot
from vla_policy_node.transport.factory import TRANSPORT_CHOICES, make_transport, strip_ros_args

log = logging.getLogger("command_mux_node")

PROGRAM = "command_mux_node"
NODE_NAME = "vla_command_mux"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = CliParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=TRANSPORT_CHOICES, default="auto",
                        help="auto: rclpy when it is importable, else DDS")
    parser.add_argument("--robot-config", dest="robot_config", default="", help=ROBOT_CONFIG_HELP)
    default_mux = default_mux_config_path()
    parser.add_argument("--mux-config", dest="mux_config", default=str(default_mux) if default_mux else "",
                        help="mux YAML (default: the installed config/mux.yaml)")
    parser.add_argument("--controller-type", dest="controller_type", default="",
                        help="override the robot YAML's controller.interface")
    parser.add_argument("--controller-topic", dest="controller_topic", default="",
                        help="with --controller-type: the controller's topic (default: derived from the YAML's)")
    parser.add_argument("--urdf", default="", help="URDF file (Cartesian robots; default: /robot_description)")
    parser.add_argument("--status-hz", dest="status_hz", type=float, default=MuxNodeParams.status_hz,
                        help="/vla/mux_status rate")
    parser.add_argument("--velocity-scale", dest="velocity_scale", type=float, default=1.0,
                        help="speed limits as a fraction of the robot YAML's, in (0, 1]")
    parser.add_argument("--use-sim-time", dest="use_sim_time", action="store_true",
                        help="DDS transport: follow /clock (under rclpy, set the use_sim_time parameter instead)")
    parser.add_argument("--node-name", dest="node_name", default=NODE_NAME, help="ROS node name")
    parser.add_argument("--log-level", dest="log_level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return parser.parse_args(list(argv))


def run(argv: Sequence[str]) -> int:
    args = parse_args(strip_ros_args(argv))
    logging.getLogger().setLevel(args.log_level.upper())
    transport = make_transport(args.transport, args.node_name, argv, PROGRAM)
    try:
        params = {
            "robot_config": Param(args.robot_config, ROBOT_CONFIG_HELP),
            "mux_config": Param(args.mux_config, "mux YAML (priorities, timeouts, locks)"),
            "controller_type": Param(args.controller_type, "override of the robot YAML's controller.interface"),
            "controller_topic": Param(args.controller_topic, "with controller_type: the controller's topic"),
            "urdf": Param(args.urdf, "URDF file (Cartesian robots; empty: /robot_description)"),
            "status_hz": Param(args.status_hz, "/vla/mux_status rate (Hz); applied live", live=True,
                               range=(0.1, 100.0)),
            "velocity_scale": Param(args.velocity_scale, "speed limits as a fraction of the robot YAML's (joint "
                                    "velocities, Cartesian speeds); live only lower", live=True,
                                    range=(0.01, 1.0), stricter="lower"),
        }
        settings = declare_parameters(transport, params)
        runtime: MuxRuntime | None = None

        def on_parameter(name: str, value: object) -> str:
            if runtime is None:
                return "the mux is still starting"
            try:
                if name == "status_hz":
                    runtime.set_status_rate(float(value))  # type: ignore[arg-type]
                elif name == "velocity_scale":
                    runtime.loop.set_velocity_scale(float(value))  # type: ignore[arg-type]
            except ValueError as error:
                return str(error)
            return ""

        watch_parameters(transport, params, on_parameter)
        if not settings["robot_config"]:
            log.error("robot_config is required (--robot-config or the ROS parameter)")
            return 2
        node = getattr(transport, "node", None)
        name = node.get_name() if node is not None else args.node_name
        try:
            embodiment = resolve_controller(load_robot(settings["robot_config"]), settings["controller_type"],
                                            settings["controller_topic"])
            if settings["mux_config"]:
                mux_params = MuxNodeParams.from_mux_file(load_mux_file(settings["mux_config"]), node_name=name,
                                                         urdf_path=str(settings["urdf"]))
            else:
                log.warning("no mux config found: built-in defaults (policy < teleop < /vla/estop)")
                mux_params = MuxNodeParams(node_name=name, urdf_path=str(settings["urdf"]))
            mux_params = dataclasses.replace(mux_params, status_hz=float(settings["status_hz"]))
            runtime = MuxRuntime(transport, embodiment, mux_params, node_clock(transport, args.use_sim_time))
            runtime.loop.set_velocity_scale(float(settings["velocity_scale"]))
        except (ConfigError, MuxFileError, ValueError) as error:
            log.error("%s", error)
            return 2
        return serve(runtime, log)
    finally:
        transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    return console_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
