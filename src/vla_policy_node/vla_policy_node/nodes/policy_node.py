"""policy_node: a VLA policy on a robot arm, over ROS 2 (rclpy) or plain DDS.

    python -m vla_policy_node.nodes.policy_node --transport dds --robot-config config/robots/sim_arm.yaml \\
        --checkpoint DIR [--instruction "pick up the red block"] [--no-dry-run]
    ros2 run vla_policy_node policy_node --ros-args -p robot_config:=... -p checkpoint:=...   (or ros2 launch)

Under rclpy it is a managed (lifecycle) node: configure loads the checkpoint and warms the model up, activate
starts the control loop (dry run stays its own switch: `dry_run` / ~/set_actuation), deactivate holds the arm
and stops, cleanup frees the model. `autostart` (default true) runs configure and activate at start-up, as
launch files want; with `autostart:=false` drive it through the standard lifecycle services
(`/vla_policy/change_state`, `get_state`: what `ros2 lifecycle set` calls). Over DDS it always autostarts.

The ROS parameters (robot_config, checkpoint, instruction, dry_run, ...; use_sim_time is the transport's) override
the command line, over rclpy and DDS alike (`ros2 param list/get/set/describe` answer on both). `ros2 param set`
applies instruction, dry_run, strategy, inference_hz, status_hz and velocity_scale (only lower: limits become
stricter while running, never looser) live and refuses the others with the reason.
See policy_runtime.py for topics and threads.

Where the model runs (`inference`, read at configure): `process` (default) in a process of its own, frames through
shared memory (inference/process.py): this process then runs no model code, so nothing the model does
stalls a control tick (benchmarks/bench_control_jitter.py), and a crashed or hung model is a hold with the reason
in the status, followed by a restart; `thread` in this process (less memory and start-up; the model shares the
GIL with the control timer); `remote` on another machine running vla_inference_server, over this node's DDS/ROS
transport (inference/remote.py). The model is warmed up at configure, so the first command is not slow.
`realtime_priority` N > 0 runs this node's threads (never a model's) at SCHED_FIFO N, as ros2_control does.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vla_policy_node.control.config import ControlConfig, ExecutorConfig
from vla_policy_node.control.deployment import AUTO, STRATEGY_SETTINGS, resolve_strategy
from vla_policy_node.control.instruction_goal import PolicyView
from vla_policy_node.inference.process import ProcessPolicy, warm_up
from vla_policy_node.inference.remote import RemotePolicy
from vla_policy_node.msgs.commands import resolve_controller
from vla_policy_node.nodes.instruction_action import PolicyHooks
from vla_policy_node.nodes.node_support import (
    Param,
    console_main,
    declare_parameters,
    node_clock,
    wait_for_shutdown,
    watch_parameters,
)
from vla_policy_node.nodes.policy_runtime import PolicyNodeParams, PolicyRuntime
from vla_policy_node.nodes.timing import tune_control_process
from vla_policy_node.spec.cli import CliParser
from vla_policy_node.spec.embodiment import ConfigError, Embodiment
from vla_policy_node.spec.remap import remap_embodiment
from vla_policy_node.spec.robot_configs import ROBOT_CONFIG_HELP, load_robot
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.factory import TRANSPORT_CHOICES, make_transport, strip_ros_args

log = logging.getLogger("policy_node")

PROGRAM = "policy_node"
NODE_NAME = "vla_policy"
HOLD_SETTLE_TIMEOUT = 1.0  # deactivate: longest wait for the hold to settle before the loop stops
INFERENCE_MODES = ("process", "thread", "remote")
FAST_PATH_PRESETS = ("auto", "off", "full")  # model/fast_path.py's presets (not imported here: no torch at --help)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = CliParser(prog=PROGRAM, description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=TRANSPORT_CHOICES, default="auto",
                        help="auto: rclpy when it is importable, else DDS")
    parser.add_argument("--robot-config", dest="robot_config", default="", help=ROBOT_CONFIG_HELP)
    parser.add_argument("--checkpoint", default="", help="checkpoint directory or model-hub id")
    parser.add_argument("--instruction", default="", help="task instruction until /vla/instruction sets one")
    parser.add_argument("--dry-run", dest="dry_run", action=argparse.BooleanOptionalAction, default=True,
                        help="commands on /vla/preview_command only (default) until ~/set_actuation enables them")
    parser.add_argument("--camera-topics", dest="camera_topics", default="", metavar="NAME:TOPIC,...",
                        help="cameras and their topics instead of the robot YAML's (a camera may read another's "
                             "topic: wrist:/camera/camera/color/image_raw on a robot without a wrist camera)")
    parser.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                        help="one of the robot YAML's topics on another name (repeatable)")
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
    parser.add_argument("--fast-path", dest="fast_path", choices=FAST_PATH_PRESETS, default="auto",
                        help="the model's fast path (model/fast_path.py): auto = device preprocessing, SDPA, bf16, "
                             "compiled backbone and captured denoising loop on CUDA, SDPA only on a CPU; off = eager; "
                             "full = every step on any device")
    parser.add_argument("--realtime-priority", dest="realtime_priority", type=int, default=0,
                        help="SCHED_FIFO priority 1-99 for this node's threads (never a model's), as ros2_control "
                             "runs; needs CAP_SYS_NICE or an rtprio limit. 0: off")
    parser.add_argument("--urdf", default="", help="URDF file for the predicted path (default: /robot_description)")
    parser.add_argument("--latch-estop", dest="latch_estop", action="store_true",
                        help="latch /vla/estop here too (when no command mux runs downstream)")
    parser.add_argument("--autostart", action=argparse.BooleanOptionalAction, default=True,
                        help="rclpy: configure and activate at start-up (else wait for lifecycle transitions)")
    parser.add_argument("--control-hz", dest="control_hz", type=float, default=0.0,
                        help="control timer rate (0: the robot YAML's rates.control_hz)")
    parser.add_argument("--strategy", choices=STRATEGY_SETTINGS, default=AUTO,
                        help="chunk execution strategy; auto: the checkpoint's deployment.json recommendation, "
                             f"else {ExecutorConfig().strategy}")
    parser.add_argument("--inference-hz", dest="inference_hz", type=float, default=0.0,
                        help="re-plan cap (0: the robot YAML's rates.inference_hz)")
    parser.add_argument("--status-hz", dest="status_hz", type=float, default=PolicyNodeParams.status_hz,
                        help="/vla/status rate")
    parser.add_argument("--velocity-scale", dest="velocity_scale", type=float, default=1.0,
                        help="speed limits as a fraction of the robot YAML's, in (0, 1]")
    parser.add_argument("--use-sim-time", dest="use_sim_time", action="store_true",
                        help="DDS transport: follow /clock (under rclpy, set the use_sim_time parameter instead)")
    parser.add_argument("--node-name", dest="node_name", default=NODE_NAME, help="ROS node name")
    parser.add_argument("--log-level", dest="log_level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    return parser.parse_args(list(argv))


def parameters(args: argparse.Namespace) -> dict[str, Param]:
    """The node's ROS parameters, with the command line's values as defaults."""
    startup = "read at configure"
    return {
        "robot_config": Param(args.robot_config, f"{ROBOT_CONFIG_HELP}; {startup}"),
        "checkpoint": Param(args.checkpoint, f"checkpoint directory or model-hub id; {startup}"),
        "instruction": Param(args.instruction, "language instruction; applied live", live=True),
        "dry_run": Param(args.dry_run, "true: commands on /vla/preview_command only; false: to the command mux. "
                         "Applied live (leaving dry run needs fresh joint states)", live=True),
        "controller_type": Param(args.controller_type, f"override of the robot YAML's controller.interface; "
                                 f"{startup}"),
        "controller_topic": Param(args.controller_topic, f"with controller_type: the controller's topic; {startup}"),
        "camera_topics": Param(args.camera_topics, "cameras and their topics, NAME:TOPIC,... (empty: the robot "
                               f"YAML's); a camera may read another's topic; {startup}"),
        "remaps": Param(",".join(args.remap), f"FROM:=TO,... topic remaps of the robot YAML's topics; {startup}"),
        "device": Param(args.device, f"torch device (cpu, cuda, cuda:N); {startup}"),
        "seed": Param(args.seed, f"sampling seed of the flow-matching head; {startup}", range=(0, 2**31 - 1)),
        "urdf": Param(args.urdf, f"URDF file for the predicted path (empty: /robot_description); {startup}"),
        "torch_threads": Param(args.torch_threads, f"CPU threads for torch (0: torch's default); {startup}",
                               range=(0, 256)),
        "latch_estop": Param(args.latch_estop, f"latch /vla/estop here too (no mux downstream); {startup}"),
        "autostart": Param(args.autostart, "configure and activate at start-up; read at start-up"),
        "control_hz": Param(args.control_hz, f"control timer rate (Hz), 0: the robot YAML's rates.control_hz; "
                            f"{startup} (the safety limits are per control period)", range=(0.0, 1000.0)),
        "strategy": Param(args.strategy, "chunk execution strategy (auto: the checkpoint's deployment.json, else "
                          f"{ExecutorConfig().strategy}); applied live from the next chunk (every merge blends from "
                          "the running plan)", live=True, choices=STRATEGY_SETTINGS),
        "inference_hz": Param(args.inference_hz, "re-plan cap of ensemble/rtc (Hz), 0: the robot YAML's "
                              "rates.inference_hz; applied live", live=True, range=(0.0, 100.0)),
        "status_hz": Param(args.status_hz, "/vla/status rate (Hz); applied live", live=True, range=(0.1, 100.0)),
        "velocity_scale": Param(args.velocity_scale, "speed limits as a fraction of the robot YAML's (joint "
                                "velocities, Cartesian speeds); live only lower", live=True, range=(0.01, 1.0),
                                stricter="lower"),
        "inference": Param(args.inference, f"where the model runs: process, thread or remote; {startup}"),
        "inference_timeout": Param(args.inference_timeout, f"seconds before an inference counts as lost (0: 10 s "
                                   f"process, 1 s remote); {startup}"),
        "fast_path": Param(args.fast_path, f"the model's fast path: auto, off or full; {startup}"),
        "realtime_priority": Param(args.realtime_priority, f"SCHED_FIFO priority of the node's threads (0: off); "
                                   f"{startup}", range=(0, 99)),
    }


def load_policy(checkpoint: str, embodiment: Embodiment, device: str, seed: int, threads: int = 0,
                fast_path: str = "off") -> Any:
    """VLAPolicy from a checkpoint (torch is imported here, not at module import); `fast_path`: a preset of
    model/fast_path.py (off, auto, full)."""
    import torch

    from vla_policy_node.model.fast_path import fast_path_preset
    from vla_policy_node.model.vla_policy import VLAPolicy

    if threads > 0:
        torch.set_num_threads(threads)
    return VLAPolicy.from_checkpoint(checkpoint, embodiment, device=device, seed=seed,
                                     fast_path=fast_path_preset(fast_path, device))


@dataclass(frozen=True)
class PolicyLoader:
    """`load_policy` as a picklable call: what the inference process runs to build its model."""

    checkpoint: str
    embodiment: Embodiment
    device: str = "cpu"
    seed: int = 0
    threads: int = 0
    fast_path: str = "off"

    def __call__(self) -> Any:
        return load_policy(self.checkpoint, self.embodiment, self.device, self.seed, self.threads, self.fast_path)


class PolicyNode:
    """The policy node's lifecycle on one transport; each transition returns "" or why it failed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.params = parameters(args)
        self.transport: Transport | None = None
        self.settings: dict[str, Any] = {}
        self.embodiment: Embodiment | None = None
        self.policy: Any = None
        self.runtime: PolicyRuntime | None = None
        self.action: Any = None  # the ExecuteInstruction action server (rclpy only)
        self._lock = threading.RLock()

    def attach(self, transport: Transport) -> None:
        self.transport = transport
        self.settings = declare_parameters(transport, self.params)
        watch_parameters(transport, self.params, self.on_parameter)
        if getattr(transport, "node", None) is not None:
            from vla_policy_node.nodes.instruction_action import InstructionActionServer

            self.action = InstructionActionServer(transport, self.hooks())

    def close(self) -> None:
        """End a running action goal and remove the action server (before the transport closes)."""
        if self.action is not None:
            self.action.close()
            self.action = None

    # ------------------------------------------------------------------------------------- action hooks
    def hooks(self) -> PolicyHooks:
        return PolicyHooks(now=self._now, view=self._view, set_instruction=self._set_instruction_parameter,
                           pause=lambda: self._with_runtime(lambda r: r.loop.pause()),
                           resume=lambda: self._with_runtime(lambda r: r.loop.resume()),
                           active_source=self._active_source,
                           latency=lambda: self.runtime.last_latency if self.runtime is not None else math.nan,
                           last_chunk=lambda: self.runtime.prediction.last_chunk_msg if self.runtime else None)

    def _now(self) -> float:
        runtime = self.runtime
        if runtime is not None:
            return runtime.clock()
        assert self.transport is not None
        return self.transport.now()

    def _with_runtime(self, action: Any) -> None:
        runtime = self.runtime
        if runtime is not None:
            action(runtime)

    def _view(self) -> PolicyView:
        runtime = self.runtime
        if runtime is None or not runtime.running:
            return PolicyView(False, False, "", "", (), False)
        st = runtime.loop.status(runtime.clock())
        return PolicyView(True, st.paused, st.instruction, st.fault or st.sensor_fault, st.stale_inputs,
                          st.estop_latched or "estop" in st.active_locks)

    def _active_source(self) -> str:
        runtime = self.runtime
        return runtime.loop.status(runtime.clock()).active_source if runtime is not None else "hold"

    def _set_instruction_parameter(self, text: str) -> None:
        """The goal's instruction through the `instruction` parameter (so `ros2 param get` agrees), which
        applies it to the runtime."""
        node = getattr(self.transport, "node", None)
        if node is None:
            self.on_parameter("instruction", text)
            return
        from rclpy.parameter import Parameter

        (result,) = node.set_parameters([Parameter("instruction", value=text)])
        if not result.successful:
            log.error("instruction %r not applied: %s", text, result.reason)

    # --------------------------------------------------------------------------------------- transitions
    def configure(self) -> str:
        """Load the robot config and the checkpoint, warm the model up, build the (stopped) runtime."""
        with self._lock:
            s = self.settings
            if not s["robot_config"] or not s["checkpoint"]:
                return "robot_config and checkpoint are required (--robot-config/--checkpoint or ROS parameters)"
            try:
                robot = remap_embodiment(load_robot(s["robot_config"]), str(s["camera_topics"]),
                                         [r for r in str(s["remaps"]).split(",") if r.strip()])
                embodiment = resolve_controller(robot, s["controller_type"], s["controller_topic"])
            except ConfigError as error:
                return str(error)
            mode = str(s["inference"])
            if mode not in INFERENCE_MODES:
                return f"inference must be one of {', '.join(INFERENCE_MODES)}, got {mode!r}"
            try:  # before the model loads: a bad deployment.json fails fast, with no inference process to stop
                strategy, source = resolve_strategy(str(s["strategy"]), str(s["checkpoint"]))
            except ValueError as error:
                return str(error)
            assert self.transport is not None
            try:
                policy, what = self._load(mode, embodiment)
            except Exception as error:  # a bad checkpoint is a failed configure, with the reason
                return f"cannot load checkpoint {s['checkpoint']!r}: {type(error).__name__}: {error}"
            log.info("configured: %s; chunk strategy %s (%s)", what, strategy, source)
            node = getattr(self.transport, "node", None)
            try:
                control = ControlConfig(executor=ExecutorConfig(strategy=strategy),
                                        control_hz=float(s["control_hz"]) or None)
                params = PolicyNodeParams(
                    node_name=node.get_name() if node is not None else self.args.node_name,
                    instruction=str(s["instruction"]), dry_run=bool(s["dry_run"]), urdf_path=str(s["urdf"]),
                    latch_estop=bool(s["latch_estop"]), status_hz=float(s["status_hz"]), control=control)
                runtime = PolicyRuntime(self.transport, embodiment, policy, params,
                                        node_clock(self.transport, self.args.use_sim_time))
                runtime.loop.set_inference_rate(float(s["inference_hz"]))
                runtime.loop.set_velocity_scale(float(s["velocity_scale"]))
            except ValueError as error:
                close = getattr(policy, "close", None)
                if close is not None:  # a failed configure leaves no inference process behind
                    close()
                return str(error)
            self.embodiment, self.policy, self.runtime = embodiment, policy, runtime
            return ""

    def _load(self, mode: str, embodiment: Embodiment) -> tuple[Any, str]:
        """The policy where `inference` says, loaded and warmed up; and a line saying so."""
        s = self.settings
        timeout = float(s["inference_timeout"]) or (1.0 if mode == "remote" else 10.0)
        if mode == "remote":
            assert self.transport is not None
            return (RemotePolicy(self.transport, embodiment, timeout=timeout),
                    f"inference on a remote vla_inference_server (timeout {timeout:.1f} s)")
        if str(s["fast_path"]) not in FAST_PATH_PRESETS:
            raise ValueError(f"fast_path must be one of {', '.join(FAST_PATH_PRESETS)}, got {s['fast_path']!r}")
        loader = PolicyLoader(str(s["checkpoint"]), embodiment, str(s["device"]), int(s["seed"]),
                              int(s["torch_threads"]), str(s["fast_path"]))
        if mode == "process":
            start = time.perf_counter()
            policy = ProcessPolicy(loader, embodiment, timeout=timeout, warmup_instruction=str(s["instruction"]))
            policy.start()  # loads and warms up the model in the inference process
            return policy, (f"{s['checkpoint']} on {s['device']} in inference process {policy.pid} (loaded and "
                            f"warmed up in {time.perf_counter() - start:.1f} s)")
        policy = loader()
        seconds = warm_up(policy, embodiment, runs=2, instruction=str(s["instruction"]))
        return policy, f"{s['checkpoint']} on {s['device']} in this process, warm-up inference {seconds * 1e3:.0f} ms"

    def activate(self) -> str:
        """Start the control loop and inference (commands go where dry_run says)."""
        with self._lock:
            if self.runtime is None:
                return "not configured"
            self.runtime.loop.resume()
            self.runtime.start()
            self._tune()
            log.info("active: %s", "actuating" if self.runtime.actuating else "dry run (preview only)")
            return ""

    def _tune(self) -> None:
        assert self.runtime is not None
        priority = int(self.settings.get("realtime_priority", 0))
        problem = tune_control_process(self.runtime.model_thread_ids, getattr(self.policy, "out_of_process", False),
                                       priority)
        if problem:
            log.warning("realtime_priority: %s; running at normal priority", problem)
        elif priority:
            log.info("node threads at SCHED_FIFO priority %d", priority)

    def deactivate(self) -> str:
        """Hold the arm (pause: the loop brakes to a stop), then stop the loop and inference."""
        with self._lock:
            runtime = self.runtime
            if runtime is None:
                return ""
            runtime.loop.pause()
            deadline = time.monotonic() + HOLD_SETTLE_TIMEOUT
            while time.monotonic() < deadline and not runtime.holding_still():
                time.sleep(runtime.loop.period)
            runtime.stop()
            log.info("inactive: holding")
            return ""

    def cleanup(self) -> str:
        """Close the runtime and free the model (and its GPU memory)."""
        with self._lock:
            if self.runtime is not None:
                self.runtime.close()
            close = getattr(self.policy, "close", None)
            if close is not None:  # the inference process, or the remote client's subscription
                close()
            self.runtime = self.policy = self.embodiment = None  # no gc.collect(): DDS entities' finalizers
            if "torch" in sys.modules:  # can block in it; the model's tensors go with their last reference
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            return ""

    def shutdown(self) -> str:
        if self.runtime is not None and self.runtime.running:
            self.deactivate()
        return self.cleanup()

    # ---------------------------------------------------------------------------------------- parameters
    def on_parameter(self, name: str, value: Any) -> str:
        """Live parameters ("" when applied, else why not); the shared rule (transport.parameters) has already
        refused start-up parameters, unknown choices and looser limits. Without a runtime (unconfigured) the
        value is kept for the next configure."""
        runtime = self.runtime
        try:
            if runtime is not None:
                problem = self._apply(runtime, name, value, str(self.settings["checkpoint"]))
                if problem:
                    return problem
        except ValueError as error:
            return str(error)
        self.settings[name] = value
        return ""

    @staticmethod
    def _apply(runtime: PolicyRuntime, name: str, value: Any, checkpoint: str) -> str:
        if name == "instruction":
            runtime.set_instruction(str(value))
        elif name == "dry_run":
            ok, message = runtime.set_actuation(not bool(value))
            return "" if ok else message
        elif name == "strategy":
            strategy, source = resolve_strategy(str(value), checkpoint)
            runtime.loop.set_strategy(strategy)
            log.info("chunk strategy %s (%s)", strategy, source)
        elif name == "inference_hz":
            runtime.loop.set_inference_rate(float(value))
        elif name == "status_hz":
            runtime.set_status_rate(float(value))
        elif name == "velocity_scale":
            runtime.loop.set_velocity_scale(float(value))
        else:
            return "not settable while running"
        return ""


def run(argv: Sequence[str]) -> int:
    args = parse_args(strip_ros_args(argv))
    logging.getLogger().setLevel(args.log_level.upper())
    node = PolicyNode(args)
    managed = use_lifecycle(args.transport)
    handlers = None
    if managed:
        from vla_policy_node.transport.rclpy_backend import LifecycleHandlers

        handlers = LifecycleHandlers(node.configure, node.activate, node.deactivate, node.cleanup, node.shutdown)
    transport = make_transport(args.transport, args.node_name, argv, PROGRAM, lifecycle=handlers)
    try:
        node.attach(transport)
        if not managed or bool(node.settings["autostart"]):
            problem = start(node, getattr(transport, "node", None) if managed else None)
            if problem:
                log.error("%s", problem)
                return 2
        log.info("running; Ctrl-C to stop")
        wait_for_shutdown()
        node.close()
        node.shutdown()
        return 0
    finally:
        node.close()
        transport.close()


def use_lifecycle(choice: str) -> bool:
    from vla_policy_node.transport.factory import use_rclpy

    return use_rclpy(choice)


def start(node: PolicyNode, lifecycle_node: Any) -> str:
    """configure + activate: through the managed node's state machine (so `get_state` and transition events
    are right) under rclpy, directly otherwise."""
    if lifecycle_node is None:
        return node.configure() or node.activate()
    from rclpy.lifecycle import TransitionCallbackReturn

    for trigger in (lifecycle_node.trigger_configure, lifecycle_node.trigger_activate):
        if trigger() != TransitionCallbackReturn.SUCCESS:
            return f"lifecycle transition {trigger.__name__.removeprefix('trigger_')} failed (see above)"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    return console_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
