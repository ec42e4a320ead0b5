"""policy_node: a VLA policy on a robot arm, over ROS 2 (rclpy) or plain DDS.

    python -m vla_policy_node.nodes.policy_node --transport dds --robot-config config/robots/sim_arm.yaml \\
        --checkpoint DIR [--instruction "pick up the red block"] [--no-dry-run]
    ros2 run vla_policy_node policy_node --ros-args -p robot_config:=... -p checkpoint:=...   (or ros2 launch)

Under rclpy the ROS parameters (robot_config, checkpoint, instruction, dry_run, controller_type, device, ...;
use_sim_time is rclpy's own) override the command line. See policy_runtime.py for topics and threads.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from vla_policy_node.msgs.commands import resolve_controller
from vla_policy_node.nodes.node_support import console_main, declare_parameters, node_clock, serve
from vla_policy_node.nodes.policy_runtime import PolicyNodeParams, PolicyRuntime
from vla_policy_node.spec.embodiment import ConfigError, Embodiment, load_embodiment
from vla_policy_node.transport.factory import TRANSPORT_CHOICES, make_transport, strip_ros_args

log = logging.getLogger("policy_node")

PROGRAM = "policy_node"
NODE_NAME = "vla_policy"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=TRANSPORT_CHOICES, default="auto",
                        help="auto: rclpy when it is importable, else DDS")
    parser.add_argument("--robot-config", dest="robot_config", default="", help="robot YAML (config/robots/*.yaml)")
    parser.add_argument("--checkpoint", default="", help="checkpoint directory or model-hub id")
    parser.add_argument("--instruction", default="")
    parser.add_argument("--dry-run", dest="dry_run", action=argparse.BooleanOptionalAction, default=True,
                        help="commands on /vla/preview_command only (default) until ~/set_actuation enables them")
    parser.add_argument("--controller-type", dest="controller_type", default="",
                        help="override the robot YAML's controller.interface")
    parser.add_argument("--controller-topic", dest="controller_topic", default="",
                        help="with --controller-type: the controller's topic (default: derived from the YAML's)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of the flow-matching head")
    parser.add_argument("--torch-threads", dest="torch_threads", type=int, default=0,
                        help="CPU threads for torch (0: torch's default); 1-2 keeps a CPU model from starving the "
                             "control threads and other nodes")
    parser.add_argument("--urdf", default="", help="URDF file for the predicted path (default: /robot_description)")
    parser.add_argument("--latch-estop", dest="latch_estop", action="store_true",
                        help="latch /vla/estop here too (when no command mux runs downstream)")
    parser.add_argument("--use-sim-time", dest="use_sim_time", action="store_true",
                        help="DDS transport: follow /clock (under rclpy, set the use_sim_time parameter instead)")
    parser.add_argument("--node-name", dest="node_name", default=NODE_NAME)
    parser.add_argument("--log-level", dest="log_level", default="INFO")
    return parser.parse_args(list(argv))


def load_policy(checkpoint: str, embodiment: Embodiment, device: str, seed: int, threads: int = 0) -> Any:
    """VLAPolicy from a checkpoint (torch is imported here, not at module import). ConfigError for a checkpoint
    that cannot be used (missing, corrupt, or made for other robots): bad input, not a crash."""
    import torch

    from vla_policy_node.model.checkpoint import CheckpointError
    from vla_policy_node.model.vla import UnknownEmbodimentError
    from vla_policy_node.model.vla_policy import VLAPolicy

    if threads > 0:
        torch.set_num_threads(threads)
    try:
        return VLAPolicy.from_checkpoint(checkpoint, embodiment, device=device, seed=seed)
    except CheckpointError as error:
        raise ConfigError(str(error)) from error
    except UnknownEmbodimentError as error:
        raise ConfigError(f"checkpoint {checkpoint}: {error}") from error


def run(argv: Sequence[str]) -> int:
    args = parse_args(strip_ros_args(argv))
    logging.getLogger().setLevel(args.log_level.upper())
    transport = make_transport(args.transport, args.node_name, argv, PROGRAM)
    try:
        settings = declare_parameters(transport, {
            "robot_config": args.robot_config, "checkpoint": args.checkpoint, "instruction": args.instruction,
            "dry_run": args.dry_run, "controller_type": args.controller_type,
            "controller_topic": args.controller_topic, "device": args.device, "seed": args.seed, "urdf": args.urdf,
            "torch_threads": args.torch_threads,
            "latch_estop": args.latch_estop,
        })
        if not settings["robot_config"] or not settings["checkpoint"]:
            log.error("robot_config and checkpoint are required (--robot-config/--checkpoint or ROS parameters)")
            return 2
        try:
            embodiment = resolve_controller(load_embodiment(settings["robot_config"]), settings["controller_type"],
                                            settings["controller_topic"])
            policy = load_policy(settings["checkpoint"], embodiment, settings["device"], int(settings["seed"]),
                                 int(settings["torch_threads"]))
        except ConfigError as error:
            log.error("%s", error)
            return 2
        node = getattr(transport, "node", None)
        params = PolicyNodeParams(
            node_name=node.get_name() if node is not None else args.node_name,
            instruction=str(settings["instruction"]),
            dry_run=bool(settings["dry_run"]),
            urdf_path=str(settings["urdf"]),
            latch_estop=bool(settings["latch_estop"]),
        )
        runtime = PolicyRuntime(transport, embodiment, policy, params, node_clock(transport, args.use_sim_time))
        return serve(runtime, log)
    finally:
        transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    return console_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
