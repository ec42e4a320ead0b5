"""The policy node over any Transport: messages in -> ControlLoop (control/) -> commands and visualisation out.

    runtime = PolicyRuntime(transport, embodiment, policy, PolicyNodeParams(dry_run=False))
    runtime.start()   # inference thread + control timer + status timer
    ...
    runtime.stop()

Glue only; what the arm does is decided in control/ (loop.py: the tick; inference.py: the inference step).
Threads (see ARCHITECTURE.md, "one control cycle"):
- subscription callbacks (the transport's thread(s)) hand decoded data to the loop (msgs/observation_input.py);
- the inference thread: InferenceStep (should_request -> sync.poll -> begin_inference -> policy.infer ->
  on_chunk), then the chunk, the predicted path and the predicted joint states go out. A model exception or a
  hung inference never stops the node: the loop holds and the status says why;
- the control timer (rates.control_hz): loop.tick -> encode for the controller -> publish;
- the status timer: /vla/status at `status_hz`, /diagnostics every `diagnostics_period`.
Every step is also a public method (`control_step`, `inference_step`, `status_step`) that tests drive with a
scripted clock.

The command mux node downstream applies the same loop again on the robot PC with teleop, the e-stop latch and a
timeout on this node's stream. Here the e-stop lock is not latching by default (the mux owns the latch and its
reset), so one reset re-arms the system.

Dry run: commands go to the preview topics until `~/set_actuation` (vla_msgs/SetActuation) enables them;
on enabling, the command is re-anchored to the measured joints so the mux receives a stream that starts
where the robot is.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vla_policy_node.control.command import Command
from vla_policy_node.control.config import ControlConfig, with_estop_only
from vla_policy_node.control.gripper import GripperGate
from vla_policy_node.control.inference import InferencePolicy, InferenceStep
from vla_policy_node.control.loop import ControlLoop
from vla_policy_node.control.native import native_status
from vla_policy_node.control.status import Diagnostic, Level
from vla_policy_node.msgs.commands import CommandEncoder
from vla_policy_node.msgs.errors import MessageErrorCounter
from vla_policy_node.msgs.images import COMPRESSED_IMAGE, IMAGE
from vla_policy_node.msgs.joints import JOINT_STATE
from vla_policy_node.msgs.observation_input import ObservationInput
from vla_policy_node.nodes.gripper_output import FloatGripperOutput
from vla_policy_node.nodes.node_support import BOOL, STRING, message_error_diagnostic
from vla_policy_node.nodes.prediction_output import PredictionOutput
from vla_policy_node.nodes.robot_model import RobotModel
from vla_policy_node.nodes.status_output import StatusOutput
from vla_policy_node.nodes.timing import ControlTimers, drop_realtime_priority
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import DEFAULT_QOS, LATCHED_QOS, SENSOR_DATA_QOS
from vla_policy_node.transport.threads import join_started

log = logging.getLogger(__name__)

SET_INSTRUCTION = "vla_msgs/srv/SetInstruction"
SET_PAUSED = "vla_msgs/srv/SetPaused"
RESET_ESTOP = "vla_msgs/srv/ResetEstop"
SET_ACTUATION = "vla_msgs/srv/SetActuation"

__all__ = ["InferencePolicy", "PolicyNodeParams", "PolicyRuntime"]


@dataclass(frozen=True)
class PolicyNodeParams:
    """Topic names follow config/README.md's topic map; services live under the node's name (`~/`)."""

    node_name: str = "vla_policy"
    instruction: str = ""
    dry_run: bool = True
    command_topic: str = "/vla/policy_command"
    preview_topic: str = "/vla/preview_command"
    gripper_command_topic: str = "/vla/policy_gripper_command"
    preview_gripper_topic: str = "/vla/preview_gripper_command"
    instruction_topic: str = "/vla/instruction"
    estop_topic: str = "/vla/estop"
    latch_estop: bool = False  # true when no mux runs downstream (the policy drives the controller itself)
    status_topic: str = "/vla/status"
    chunk_topic: str = "/vla/action_chunk"
    path_topic: str = "/vla/predicted_path"
    predicted_joint_states_topic: str = "/vla/predicted_joint_states"
    urdf_path: str = ""
    status_hz: float = 10.0
    diagnostics_period: float = 1.0
    idle_wait: float = 0.005  # the inference thread's longest sleep while waiting for new inputs
    control: ControlConfig = field(default_factory=ControlConfig)

    def __post_init__(self) -> None:
        if not (self.status_hz > 0 and self.diagnostics_period > 0 and self.idle_wait > 0):
            raise ValueError("status_hz, diagnostics_period and idle_wait must be positive")

    def control_config(self) -> ControlConfig:
        """`control` with this node's one lock: the e-stop (latching only when `latch_estop`)."""
        return with_estop_only(self.control, self.latch_estop)


class PolicyRuntime:
    def __init__(self, transport: Transport, embodiment: Embodiment, policy: InferencePolicy,
                 params: PolicyNodeParams | None = None, clock: Any = None) -> None:
        """embodiment: with the controller already resolved (`resolve_controller`). clock: () -> seconds,
        default `transport.now` (wall clock over DDS, the ROS clock under rclpy)."""
        self.transport = transport
        self.embodiment = embodiment
        self.params = params = params or PolicyNodeParams()
        self.status_hz = params.status_hz
        self.clock = clock or transport.now
        self.loop = ControlLoop(embodiment, params.control_config())
        self.loop.set_special_tokens(getattr(policy, "special_tokens", ()))
        self.set_instruction(params.instruction)
        self.inference = InferenceStep(self.loop, policy)
        self.inputs = ObservationInput(self.loop, self.clock)
        self.errors: MessageErrorCounter = self.inputs.errors
        self.robot = RobotModel(embodiment, transport, params.urdf_path)
        self.encoder = CommandEncoder(embodiment, transport.new_message, self.loop.period)
        self._cartesian = embodiment.action_space.cartesian
        msgtype = self.encoder.msgtype
        self._outputs = {
            True: (transport.publisher(params.command_topic, msgtype, DEFAULT_QOS),
                   FloatGripperOutput(transport, params.gripper_command_topic, LATCHED_QOS)),
            False: (transport.publisher(params.preview_topic, msgtype, DEFAULT_QOS),
                    FloatGripperOutput(transport, params.preview_gripper_topic, LATCHED_QOS)),
        }
        self._gripper_gate = GripperGate()
        self._actuating = not params.dry_run
        self._output_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._timers = ControlTimers(transport, params.node_name, self.loop.period, self.control_step,
                                     params.status_hz, self.status_step)
        self._inference_thread: threading.Thread | None = None
        self._logged: set[str] = set()
        self.commands_sent = 0
        self.inferences = 0
        self.last_command: Command | None = None
        self.last_latency = float("nan")
        self.status_output = StatusOutput(transport, params.status_topic, params.node_name, embodiment.name,
                                          params.diagnostics_period)
        self.prediction = PredictionOutput(transport, embodiment, self.loop.space, self.robot, params.chunk_topic,
                                           params.path_topic, params.predicted_joint_states_topic)
        sub = transport.subscribe
        self._subscriptions = [
            sub(cam.topic, COMPRESSED_IMAGE if cam.compressed else IMAGE, self._waking(self.inputs.image_handler(cam)),
                SENSOR_DATA_QOS)
            for cam in embodiment.cameras
        ]
        self._subscriptions += [
            sub(embodiment.joint_states.topic, JOINT_STATE, self._waking(self.inputs.on_joint_state), SENSOR_DATA_QOS),
            sub(params.instruction_topic, STRING, self.on_instruction, LATCHED_QOS),
            sub(params.estop_topic, BOOL, self.on_estop, DEFAULT_QOS),
        ]
        self._services = [
            transport.service("~/set_instruction", SET_INSTRUCTION, self._serve_set_instruction),
            transport.service("~/set_paused", SET_PAUSED, self._serve_set_paused),
            transport.service("~/reset_estop", RESET_ESTOP, self._serve_reset_estop),
            transport.service("~/set_actuation", SET_ACTUATION, self._serve_set_actuation),
        ]
        log.info("%s: %s, %d camera(s), controller %s, %s; %s", params.node_name, embodiment.name,
                 len(embodiment.cameras), embodiment.controller.interface,
                 "actuating" if self._actuating else "dry run (preview only)", native_status())

    @property
    def policy(self) -> InferencePolicy:
        return self.inference.policy

    @policy.setter
    def policy(self, policy: InferencePolicy) -> None:
        self.inference.policy = policy

    # ------------------------------------------------------------------------------------------- inputs
    def _waking(self, handler: Any) -> Any:
        """A sensor handler that also wakes the inference thread (new data may complete an observation)."""

        def callback(msg: Any) -> None:
            handler(msg)
            self._wake.set()

        return callback

    def on_instruction(self, msg: Any) -> None:
        self.set_instruction(str(msg.data))

    def on_estop(self, msg: Any) -> None:
        self.loop.on_lock("estop", bool(msg.data), self.clock())

    # ------------------------------------------------------------------------------------------ control
    def control_step(self) -> Command | None:
        """One control period: tick the loop, publish the command (and the gripper on change)."""
        now = self.clock()
        if now <= 0.0:  # simulated time that has not started
            return None
        command = self.loop.tick(now, None, self._measured_ee_pose())
        if command is None:
            return None
        velocity = self.loop.filter.last_velocity if command.kind == "joint_position" else None
        msg = self.encoder.encode(command, now, velocity)
        with self._output_lock:
            publisher, gripper = self._outputs[self._actuating]
            publisher.publish(msg)
            if command.gripper is not None and self._gripper_gate.offer(command.gripper, now):
                gripper.send(command.gripper, now)
        self.commands_sent += 1
        self.last_command = command
        return command

    def _measured_ee_pose(self) -> np.ndarray | None:
        return self.robot.ee_pose(self.loop.measured_state) if self._cartesian else None

    @property
    def actuating(self) -> bool:
        return self._actuating

    def set_actuation(self, enable: bool) -> tuple[bool, str]:
        """Leave (True) or enter (False) dry run; leaving re-anchors the command at the measured joints."""
        with self._output_lock:
            if enable == self._actuating:
                return True, "actuating already" if enable else "dry run already"
            if enable:
                ok, problem = self.loop.reanchor(self.clock(), self._measured_ee_pose())
                if not ok:
                    return False, problem
            self._actuating = enable
            self._gripper_gate.reset()
        message = (f"actuating: commands on {self.params.command_topic}" if enable
                   else f"dry run: commands on {self.params.preview_topic} only")
        log.info("%s", message)
        return True, message

    # ---------------------------------------------------------------------------------------- inference
    def inference_step(self) -> bool:
        """One inference if the loop wants one and a fresh observation is ready; True if the model ran."""
        result = self.inference.step(self.clock, self._room_for_work)
        if result is None:
            return False
        if result.chunk is None:
            error = result.error
            self._log_once(f"inference failed: {type(error).__name__}: {error}", exc_info=error)
            return True
        self.inferences += 1
        self.last_latency = result.latency
        self.prediction.publish(result.chunk, result.request.obs, result.latency, self.clock())
        return True

    def _room_for_work(self) -> None:
        """The inference thread's chunk landing (plan, prediction messages) and next request hold the GIL for a
        while: started in the second half of a control period they delayed its tick (the jitter benchmark's
        latest ticks waited behind them). So they start in the first half, waiting for the tick if need be."""
        self._timers.wait_for_room(0.5 * self.loop.period)

    @property
    def model_thread_ids(self) -> tuple[int, ...]:
        """Native ids of the threads that run model code here (none when the model is out of process): what
        `set_realtime_priority` must leave at normal priority."""
        thread = self._inference_thread
        if thread is None or thread.native_id is None or getattr(self.policy, "out_of_process", False):
            return ()
        return (thread.native_id,)

    def _inference_loop(self, stop: threading.Event) -> None:
        if not getattr(self.policy, "out_of_process", False):
            drop_realtime_priority()  # the node may run at real-time priority; a model in this thread never does
        while not stop.is_set():
            try:
                ran = self.inference_step()
            except Exception:  # a bug in the glue must not end inference silently either
                self._log_once("inference step raised", exc_info=True)
                ran = False
            if not ran:
                self._wake.wait(self.params.idle_wait)
                self._wake.clear()

    # ------------------------------------------------------------------------------------------- status
    def status_step(self) -> None:
        """Publish /vla/status; /diagnostics when `diagnostics_period` has passed."""
        now = self.clock()
        if now > 0.0:
            self.status_output.publish(now, self.loop.status(now), self.diagnostics)

    def diagnostics(self, now: float) -> list[Diagnostic]:
        out = self.loop.diagnostics(now)
        out.append(message_error_diagnostic(self.errors))
        topic = self.params.command_topic if self._actuating else self.params.preview_topic
        out.append(Diagnostic(
            Level.OK, "output", ("actuating" if self._actuating else "dry run") + f": commands on {topic}",
            (("actuating", str(self._actuating)), ("command_topic", topic),
             ("controller_interface", self.embodiment.controller.interface),
             ("commands_sent", str(self.commands_sent)))))
        problem = self.robot.problem
        out.append(Diagnostic(Level.WARN if problem else Level.OK, "predicted path",
                              f"markers off: {problem}" if problem else f"markers in {self.robot.path_frame}"))
        return out

    def set_instruction(self, text: str) -> tuple[bool, str]:
        ok, message = self.loop.set_instruction(text)
        (log.info if ok else log.error)("%s", message)
        return ok, message
    # ----------------------------------------------------------------------------------------- services
    def _serve_set_instruction(self, request: Any) -> Any:
        ok, message = self.set_instruction(str(request.instruction))
        return self.transport.new_response(SET_INSTRUCTION, success=ok, message=message)

    def _serve_set_paused(self, request: Any) -> Any:
        if request.paused:
            self.loop.pause()
            message = "policy paused"
        else:
            message = self.loop.resume()
        return self.transport.new_response(SET_PAUSED, success=True, message=message)

    def _serve_reset_estop(self, request: Any) -> Any:
        ok, message = self.loop.reset_estop(self.clock())
        return self.transport.new_response(RESET_ESTOP, success=ok, message=message)

    def _serve_set_actuation(self, request: Any) -> Any:
        ok, message = self.set_actuation(bool(request.enable))
        return self.transport.new_response(SET_ACTUATION, success=ok, message=message, actuating=self._actuating)

    def set_status_rate(self, hz: float) -> None:
        """The /status (and diagnostics check) timer's rate, applied at once when running."""
        self._timers.set_status_rate(hz)
        self.status_hz = self._timers.status_hz

    # ---------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the inference thread, the control timer and the status timer."""
        self._timers.start()
        name = self.params.node_name
        self._inference_thread = threading.Thread(target=self._inference_loop, args=(self._stop,),
                                                  name=f"{name}-inference", daemon=True)
        self._inference_thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the threads; a model stuck in `infer` is left behind (daemon thread), not waited for. A later
        `start()` runs the node again (a lifecycle deactivate / activate)."""
        self._stop.set()
        self._wake.set()
        self._timers.stop()
        join_started(self._inference_thread, timeout)
        self._inference_thread = None
        self._stop = threading.Event()  # a thread left in `infer` keeps the old (set) event and ends after it

    @property
    def running(self) -> bool:
        return self._timers.running

    def holding_still(self) -> bool:
        """The last command is a hold that no longer moves (the brake ramp is over), or nothing was sent."""
        last = self.last_command
        if last is None or not self.running:
            return True
        return last.hold and self.loop.filter.last_velocity is not None and bool(
            np.all(np.abs(self.loop.filter.last_velocity) < 1e-6))

    def close(self) -> None:
        self.stop()
        for service in self._services:
            service.close()
        for subscription in self._subscriptions:
            subscription.close()
        self.robot.close()

    def _log_once(self, message: str, exc_info: Any = False, level: int = logging.ERROR) -> None:
        if message in self._logged or len(self._logged) > 100:
            return
        self._logged.add(message)
        log.log(level, "%s (logged once)", message, exc_info=exc_info)
