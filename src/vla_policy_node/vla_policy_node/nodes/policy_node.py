"""policy_node: a VLA policy on a robot arm, over ROS 2 (rclpy) or plain DDS.

    python -m vla_policy_node.nodes.policy_node --transport dds --robot-config config/robots/sim_arm.yaml \\
        --checkpoint DIR [--instruction "pick up the red block"] [--no-dry-run]
    ros2 run vla_policy_node policy_node --ros-args -p robot_config:=... -p checkpoint:=...   (or ros2 launch)

Under rclpy the ROS parameters (robot_config, checkpoint, instruction, dry_run, controller_type, device, ...;
use_sim_time is rclpy's own) override the command line. See policy_runtime.py for topics and threads.

The model runs in its own process by default (`--inference process`, transport/inference_ipc.py): this process
then runs no model code, so the control timer is never stalled by it (benchmarks/bench_control_jitter.py), and a
crashed or hung model is a hold with the reason in the status, followed by a restart. `--inference thread` keeps
the model in this process (less memory and start-up time; the model shares the GIL with the control timer).
`--inference remote` leaves it to vla_inference_server on another machine (a GPU box) over DDS/ROS.
Either way the model is warmed up before the node starts, so the first command is not slow.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vla_policy_node.msgs.commands import resolve_controller
from vla_policy_node.nodes.node_support import console_main, declare_parameters, node_clock, serve
from vla_policy_node.nodes.policy_runtime import PolicyNodeParams, PolicyRuntime
from vla_policy_node.nodes.timing import set_realtime_priority
from vla_policy_node.spec.embodiment import ConfigError, Embodiment, load_embodiment
from vla_policy_node.transport.factory import TRANSPORT_CHOICES, make_transport, strip_ros_args
from vla_policy_node.transport.inference_dds import RemotePolicy
from vla_policy_node.transport.inference_ipc import InferenceProcessError, ProcessPolicy, warm_up

log = logging.getLogger("policy_node")

PROGRAM = "policy_node"
NODE_NAME = "vla_policy"
INFERENCE_MODES = ("process", "thread", "remote")
CONTROL_SWITCH_INTERVAL = 0.0005  # s; CPython's default (5 ms) is longer than a 250 Hz control period


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
    parser.add_argument("--inference", choices=INFERENCE_MODES, default="process",
                        help="process (default): the model in its own process, frames through shared memory, "
                             "so it can never stall a control tick; thread: in this process (the model shares "
                             "the GIL with the control timer); remote: on another machine running "
                             "vla_inference_server, over this node's DDS/ROS transport")
    parser.add_argument("--inference-timeout", dest="inference_timeout", type=float, default=0.0,
                        help="process: seconds one inference may take before the process counts as hung and "
                             "is restarted (the watchdog holds the arm long before); remote: seconds to wait for "
                             "the server's chunk before asking again. 0: 10 s (process), 1 s (remote)")
    parser.add_argument("--realtime-priority", dest="realtime_priority", type=int, default=0,
                        help="SCHED_FIFO priority 1-99 for this node's threads (never a model's), as ros2_control "
                             "runs; needs CAP_SYS_NICE or an rtprio limit. 0: off")
    parser.add_argument("--urdf", default="", help="URDF file for the predicted path (default: /robot_description)")
    parser.add_argument("--latch-estop", dest="latch_estop", action="store_true",
                        help="latch /vla/estop here too (when no command mux runs downstream)")
    parser.add_argument("--use-sim-time", dest="use_sim_time", action="store_true",
                        help="DDS transport: follow /clock (under rclpy, set the use_sim_time parameter instead)")
    parser.add_argument("--node-name", dest="node_name", default=NODE_NAME)
    parser.add_argument("--log-level", dest="log_level", default="INFO")
    return parser.parse_args(list(argv))


def load_policy(checkpoint: str, embodiment: Embodiment, device: str, seed: int, threads: int = 0) -> Any:
    """VLAPolicy from a checkpoint (torch is imported here, not at module import)."""
    import torch

    from vla_policy_node.model.vla_policy import VLAPolicy

    if threads > 0:
        torch.set_num_threads(threads)
    return VLAPolicy.from_checkpoint(checkpoint, embodiment, device=device, seed=seed)


@dataclass(frozen=True)
class PolicyLoader:
    """`load_policy` as a picklable call: what the inference process runs to build its model."""

    checkpoint: str
    embodiment: Embodiment
    device: str = "cpu"
    seed: int = 0
    threads: int = 0

    def __call__(self) -> Any:
        return load_policy(self.checkpoint, self.embodiment, self.device, self.seed, self.threads)


class PolicyNode:
    """The runtime plus where its model runs; `start` also tunes this process for steady control ticks."""

    def __init__(self, runtime: PolicyRuntime, policy: Any, realtime_priority: int = 0) -> None:
        self.runtime = runtime
        self.policy = policy
        self.realtime_priority = realtime_priority

    def start(self) -> None:
        self.runtime.start()
        gc.freeze()  # start-up objects (a model's, the typestore's) are never scanned by a collection again
        if getattr(self.policy, "out_of_process", False):
            sys.setswitchinterval(CONTROL_SWITCH_INTERVAL)  # only light threads here: hand the GIL over sooner
        if self.realtime_priority:
            problem = set_realtime_priority(self.realtime_priority, exclude=self.runtime.model_thread_ids)
            if problem:
                log.warning("--realtime-priority: %s; running at normal priority", problem)
            else:
                log.info("node threads at SCHED_FIFO priority %d", self.realtime_priority)

    def close(self) -> None:
        self.runtime.close()
        close = getattr(self.policy, "close", None)
        if close is not None:
            close()


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
            "latch_estop": args.latch_estop, "inference": args.inference,
            "inference_timeout": args.inference_timeout, "realtime_priority": args.realtime_priority,
        })
        if not settings["robot_config"] or not settings["checkpoint"]:
            log.error("robot_config and checkpoint are required (--robot-config/--checkpoint or ROS parameters)")
            return 2
        try:
            embodiment = resolve_controller(load_embodiment(settings["robot_config"]), settings["controller_type"],
                                            settings["controller_topic"])
        except ConfigError as error:
            log.error("%s", error)
            return 2
        mode = str(settings["inference"])
        if mode not in INFERENCE_MODES:
            log.error("inference must be one of %s, got %r", ", ".join(INFERENCE_MODES), mode)
            return 2
        loader = PolicyLoader(str(settings["checkpoint"]), embodiment, str(settings["device"]),
                              int(settings["seed"]), int(settings["torch_threads"]))
        timeout = float(settings["inference_timeout"]) or (1.0 if mode == "remote" else 10.0)
        if mode == "remote":
            policy = RemotePolicy(transport, embodiment, timeout=timeout)
        elif mode == "process":
            policy = ProcessPolicy(loader, embodiment, timeout=timeout)
            try:
                policy.start()
            except InferenceProcessError as error:
                log.error("%s", error)
                return 1
        else:
            policy = loader()
            warm_up(policy, embodiment.cameras)
        node = getattr(transport, "node", None)
        params = PolicyNodeParams(
            node_name=node.get_name() if node is not None else args.node_name,
            instruction=str(settings["instruction"]),
            dry_run=bool(settings["dry_run"]),
            urdf_path=str(settings["urdf"]),
            latch_estop=bool(settings["latch_estop"]),
        )
        runtime = PolicyRuntime(transport, embodiment, policy, params, node_clock(transport, args.use_sim_time))
        return serve(PolicyNode(runtime, policy, int(settings["realtime_priority"])), log)
    finally:
        transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    return console_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
