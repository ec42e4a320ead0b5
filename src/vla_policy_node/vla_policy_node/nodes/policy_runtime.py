"""The policy node's logic over any Transport: messages in, ControlLoop, commands and visualisation out.

    runtime = PolicyRuntime(transport, embodiment, policy, PolicyNodeParams(dry_run=False))
    runtime.start()   # inference thread + control timer + status timer
    ...
    runtime.stop()

Threads (see ARCHITECTURE.md, "one control cycle"):
- subscription callbacks (the transport's thread(s)) decode, resize and hand data to `loop.sync`;
- the inference thread: should_request_inference -> sync.poll -> begin_inference -> policy.infer -> on_chunk,
  then publishes the chunk, the predicted path and the predicted joint states. A model exception or a hung
  inference never stops the node: the loop holds and the status says why (fault / inference timeout);
- the control timer (rates.control_hz): loop.tick -> encode for the controller -> publish. It never waits for
  the model: a chunk is merged under the loop's lock only for the swap;
- the status timer: /vla/status at `status_hz`, /diagnostics every `diagnostics_period`.
Every step is also a public method (`control_step`, `inference_step`, `status_step`) that tests drive with a
scripted clock.

Safety: the ControlLoop applies the full safety filter (limits, velocity, acceleration, jerk,
max_relative_target) to every command this node sends, and holds on stale inputs, model faults, pause and
e-stop. The command mux node downstream applies the same filter again on the robot PC and adds what a policy
node cannot: teleop priority, the e-stop latch and a timeout on the policy stream itself. Here the e-stop
lock is not latching by default (the mux owns the latch and its reset), so one reset re-arms the system.

Dry run: commands go to the preview topics until `~/set_actuation` (vla_msgs/SetActuation) enables them;
on enabling, the command is re-anchored to the measured joints so the mux receives a stream that starts
where the robot is.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np

from vla_policy_node.control.command import ChunkError, Command
from vla_policy_node.control.config import ControlConfig, LockSpec
from vla_policy_node.control.gripper import GripperGate
from vla_policy_node.control.loop import ControlLoop
from vla_policy_node.control.status import Diagnostic, Level
from vla_policy_node.control.sync import JOINT_STATES
from vla_policy_node.msgs.chunks import ACTION_CHUNK, encode_action_chunk
from vla_policy_node.msgs.commands import CommandEncoder
from vla_policy_node.msgs.errors import MessageErrorCounter
from vla_policy_node.msgs.images import COMPRESSED_IMAGE, IMAGE, decode_compressed_image, decode_image
from vla_policy_node.msgs.joints import JOINT_STATE, decode_joint_state, encode_joint_state
from vla_policy_node.msgs.markers import MARKER_ARRAY, encode_path_markers
from vla_policy_node.msgs.stamps import header_stamp
from vla_policy_node.nodes.gripper_output import FloatGripperOutput
from vla_policy_node.nodes.node_support import (
    BOOL,
    DIAGNOSTIC_ARRAY,
    POLICY_STATUS,
    STRING,
    diagnostics_message,
    message_error_diagnostic,
    policy_status_message,
)
from vla_policy_node.nodes.robot_model import RobotModel
from vla_policy_node.nodes.timing import Ticker, drop_realtime_priority, make_ticker
from vla_policy_node.spec.embodiment import CameraSpec, Embodiment
from vla_policy_node.spec.types import ActionChunk, Observation, RtcPrefix
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import DEFAULT_QOS, LATCHED_QOS, SENSOR_DATA_QOS

log = logging.getLogger(__name__)

SET_INSTRUCTION = "vla_msgs/srv/SetInstruction"
SET_PAUSED = "vla_msgs/srv/SetPaused"
RESET_ESTOP = "vla_msgs/srv/ResetEstop"
SET_ACTUATION = "vla_msgs/srv/SetActuation"


class InferencePolicy(Protocol):
    """What the runtime needs from a policy (VLAPolicy, or a scripted one in tests)."""

    def infer(self, observation: Observation, *, prefix: RtcPrefix | None = None) -> ActionChunk: ...


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
        mux = dataclasses.replace(self.control.mux, locks=(LockSpec("estop", priority=255,
                                                                    latching=self.latch_estop),))
        return dataclasses.replace(self.control, mux=mux)


class PolicyRuntime:
    def __init__(self, transport: Transport, embodiment: Embodiment, policy: InferencePolicy,
                 params: PolicyNodeParams | None = None, clock: Any = None) -> None:
        """embodiment: with the controller already resolved (`resolve_controller`). clock: () -> seconds,
        default `transport.now` (wall clock over DDS, the ROS clock under rclpy)."""
        self.transport = transport
        self.embodiment = embodiment
        self.policy = policy
        self.params = params = params or PolicyNodeParams()
        self.clock = clock or transport.now
        self.loop = ControlLoop(embodiment, params.control_config())
        self.loop.set_instruction(params.instruction)
        self.errors = MessageErrorCounter()
        self.robot = RobotModel(embodiment, transport, params.urdf_path)
        self.encoder = CommandEncoder(embodiment, transport.new_message, self.loop.period)
        self._cartesian = embodiment.action_space.cartesian
        new_pub = transport.publisher
        msgtype = self.encoder.msgtype
        self._outputs = {
            True: (new_pub(params.command_topic, msgtype, DEFAULT_QOS),
                   FloatGripperOutput(transport, params.gripper_command_topic, LATCHED_QOS)),
            False: (new_pub(params.preview_topic, msgtype, DEFAULT_QOS),
                    FloatGripperOutput(transport, params.preview_gripper_topic, LATCHED_QOS)),
        }
        self._gripper_gate = GripperGate()
        self._actuating = not params.dry_run
        self._output_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._tickers: list[Ticker] = []
        self._inference_thread: threading.Thread | None = None
        self._last_diagnostics = -math.inf
        self._logged: set[str] = set()
        self.commands_sent = 0
        self.inferences = 0
        self.last_command: Command | None = None
        self.last_latency = math.nan
        self._status_pub = new_pub(params.status_topic, POLICY_STATUS, DEFAULT_QOS)
        self._diagnostics_pub = new_pub("/diagnostics", DIAGNOSTIC_ARRAY, DEFAULT_QOS)
        self._chunk_pub = new_pub(params.chunk_topic, ACTION_CHUNK, DEFAULT_QOS)
        self._path_pub = new_pub(params.path_topic, MARKER_ARRAY, DEFAULT_QOS)
        self._ghost_pub = new_pub(params.predicted_joint_states_topic, JOINT_STATE, DEFAULT_QOS)
        self._subscriptions = [
            transport.subscribe(cam.topic, COMPRESSED_IMAGE if cam.compressed else IMAGE,
                                self._image_callback(cam), SENSOR_DATA_QOS)
            for cam in embodiment.cameras
        ]
        self._subscriptions += [
            transport.subscribe(embodiment.joint_states.topic, JOINT_STATE, self.on_joint_state, SENSOR_DATA_QOS),
            transport.subscribe(params.instruction_topic, STRING, self.on_instruction, LATCHED_QOS),
            transport.subscribe(params.estop_topic, BOOL, self.on_estop, DEFAULT_QOS),
        ]
        name = params.node_name
        self._services = [
            transport.service("~/set_instruction", SET_INSTRUCTION, self._serve_set_instruction),
            transport.service("~/set_paused", SET_PAUSED, self._serve_set_paused),
            transport.service("~/reset_estop", RESET_ESTOP, self._serve_reset_estop),
            transport.service("~/set_actuation", SET_ACTUATION, self._serve_set_actuation),
        ]
        log.info("%s: %s, %d camera(s), controller %s, %s", name, embodiment.name, len(embodiment.cameras),
                 embodiment.controller.interface, "actuating" if self._actuating else "dry run (preview only)")

    # ------------------------------------------------------------------------------------------- inputs
    def _image_callback(self, camera: CameraSpec):
        decoder = decode_compressed_image if camera.compressed else partial(decode_image, copy=False)

        def on_image(msg: Any) -> None:
            # No resize here: the sync keeps the frame as received and the observation fits it to the model's
            # size when the policy reads it (only frames that reach the model are resized, off this thread).
            rgb = self.errors.decode(decoder, msg, topic=camera.topic)
            if rgb is None:
                return
            stamp = header_stamp(msg)
            encoding = str(msg.format if camera.compressed else msg.encoding)
            self.loop.sync.add_image(camera.name, stamp, rgb, encoding, self.clock())
            self._wake.set()

        return on_image

    def on_joint_state(self, msg: Any) -> None:
        data = self.errors.decode(decode_joint_state, msg, topic=self.embodiment.joint_states.topic)
        if data is None:
            return
        self.loop.sync.add_joint_state(data.stamp, data.names, data.positions, self.clock())
        self._wake.set()

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
        ee_pose = self._measured_ee_pose() if self._cartesian else None
        command = self.loop.tick(now, None, ee_pose)
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
        latest = self.loop.sync.latest_state()
        return self.robot.ee_pose(latest[1]) if latest is not None else None

    @property
    def actuating(self) -> bool:
        return self._actuating

    def set_actuation(self, enable: bool) -> tuple[bool, str]:
        """Leave (True) or enter (False) dry run; leaving re-anchors the command at the measured joints."""
        with self._output_lock:
            if enable == self._actuating:
                return True, "actuating already" if enable else "dry run already"
            if enable:
                now = self.clock()
                latest = self.loop.sync.latest_state()
                if latest is None or now - latest[0] > self.loop.sync.max_age[JOINT_STATES]:
                    return False, "no fresh joint state: cannot start the command where the robot is"
                try:
                    self.loop.reset_command(latest[1], self._measured_ee_pose() if self._cartesian else None)
                except ValueError as error:
                    return False, str(error)
            self._actuating = enable
            self._gripper_gate.reset()
        message = (f"actuating: commands on {self.params.command_topic}" if enable
                   else f"dry run: commands on {self.params.preview_topic} only")
        log.info("%s", message)
        return True, message

    # ---------------------------------------------------------------------------------------- inference
    def inference_step(self) -> bool:
        """One inference if the loop wants one and a fresh observation is ready; True if the model ran."""
        loop = self.loop
        now = self.clock()
        if not loop.should_request_inference(now):
            return False
        obs = loop.sync.poll(now)
        if obs is None:
            return False
        prefix = loop.begin_inference(obs, now)
        start = time.perf_counter()
        try:
            chunk = self.policy.infer(obs, prefix=prefix)
        except Exception as error:  # the model's failure is a status, never the node's end
            loop.on_inference_error(error, self.clock())
            self._log_once(f"inference failed: {type(error).__name__}: {error}", exc_info=True)
            return True
        latency = time.perf_counter() - start
        self.inferences += 1
        self.last_latency = latency
        loop.on_chunk(chunk, latency, self.clock())
        self._publish_prediction(chunk, obs, latency)
        return True

    @property
    def model_thread_ids(self) -> tuple[int, ...]:
        """Native ids of the threads that run model code here (none when the model is out of process): what
        `set_realtime_priority` must leave at normal priority."""
        thread = self._inference_thread
        if thread is None or thread.native_id is None or getattr(self.policy, "out_of_process", False):
            return ()
        return (thread.native_id,)

    def _inference_loop(self) -> None:
        if not getattr(self.policy, "out_of_process", False):
            drop_realtime_priority()  # the node may run at real-time priority; a model in this thread never does
        while not self._stop.is_set():
            try:
                ran = self.inference_step()
            except Exception:  # a bug in the glue must not end inference silently either
                self._log_once("inference step raised", exc_info=True)
                ran = False
            if not ran:
                self._wake.wait(self.params.idle_wait)
                self._wake.clear()

    def _publish_prediction(self, chunk: ActionChunk, obs: Observation, latency: float) -> None:
        """/vla/action_chunk always; the predicted path and the ghost's joint states where they can be made."""
        new = self.transport.new_message
        self._chunk_pub.publish(encode_action_chunk(new, chunk, frame_id=self.embodiment.action_space.frame,
                                                    inference_latency=latency))
        try:
            arm, gripper = self.loop.space.convert_chunk(chunk, obs.state)
        except ChunkError:
            return  # the loop rejected it too and reports why
        now = self.clock()
        kind = self.loop.space.kind
        points: np.ndarray | None = None
        frame = self.embodiment.action_space.frame
        if kind == "joint_position":
            names = list(self.embodiment.joint_names)
            final = list(arm[-1])
            if gripper is not None and self.embodiment.gripper is not None:
                names.append(self.embodiment.gripper.name)
                final.append(float(gripper[-1]))
            self._ghost_pub.publish(encode_joint_state(new, names, final, stamp=now))
            points = self.robot.tool_positions(arm)
            frame = self.robot.path_frame
        elif kind == "ee_pose":
            points = arm[:, :3]
        else:  # twist: integrate the predicted velocities from the measured tool position
            start_pose = self.robot.ee_pose(obs.state)
            if start_pose is not None:
                points = start_pose[:3] + np.cumsum(arm[:, :3] * chunk.dt, axis=0)
        if points is None:
            self._log_once(f"predicted path markers off: {self.robot.problem}", level=logging.WARNING)
            return
        self._path_pub.publish(encode_path_markers(new, points, stamp=now, frame_id=frame))

    # ------------------------------------------------------------------------------------------- status
    def status_step(self) -> None:
        """Publish /vla/status; /diagnostics when `diagnostics_period` has passed."""
        now = self.clock()
        if now <= 0.0:
            return
        new = self.transport.new_message
        self._status_pub.publish(policy_status_message(new, self.loop.status(now), now))
        if now - self._last_diagnostics >= self.params.diagnostics_period or now < self._last_diagnostics:
            self._last_diagnostics = now
            self._diagnostics_pub.publish(diagnostics_message(
                new, self.params.node_name, self.embodiment.name, self.diagnostics(now), now))

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

    def set_instruction(self, text: str) -> None:
        self.loop.set_instruction(text)
        log.info("instruction: %r", text)

    # ----------------------------------------------------------------------------------------- services
    def _serve_set_instruction(self, request: Any) -> Any:
        self.set_instruction(str(request.instruction))
        return self.transport.new_response(SET_INSTRUCTION, success=True,
                                           message=f"instruction set: {request.instruction!r}")

    def _serve_set_paused(self, request: Any) -> Any:
        paused = bool(request.paused)
        if paused:
            self.loop.pause()
        else:
            self.loop.resume()
        return self.transport.new_response(SET_PAUSED, success=True,
                                           message="policy paused" if paused else "policy resumed")

    def _serve_reset_estop(self, request: Any) -> Any:
        ok, message = self.loop.reset_estop(self.clock())
        return self.transport.new_response(RESET_ESTOP, success=ok, message=message)

    def _serve_set_actuation(self, request: Any) -> Any:
        ok, message = self.set_actuation(bool(request.enable))
        return self.transport.new_response(SET_ACTUATION, success=ok, message=message, actuating=self._actuating)

    # ---------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the inference thread, the control timer and the status timer."""
        if self._tickers:
            raise RuntimeError("already started")
        name = self.params.node_name
        self._tickers = [
            make_ticker(self.transport, self.loop.period, self.control_step, f"{name}-control"),
            make_ticker(self.transport, 1.0 / self.params.status_hz, self.status_step, f"{name}-status"),
        ]
        for ticker in self._tickers:
            ticker.start()
        self._inference_thread = threading.Thread(target=self._inference_loop, name=f"{name}-inference",
                                                  daemon=True)
        self._inference_thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the threads; a model stuck in `infer` is left behind (daemon thread), not waited for."""
        self._stop.set()
        self._wake.set()
        for ticker in self._tickers:
            ticker.stop()
        if self._inference_thread is not None:
            self._inference_thread.join(timeout)

    def close(self) -> None:
        self.stop()
        for service in self._services:
            service.close()
        for subscription in self._subscriptions:
            subscription.close()
        self.robot.close()

    def _log_once(self, message: str, exc_info: bool = False, level: int = logging.ERROR) -> None:
        if message in self._logged or len(self._logged) > 100:
            return
        self._logged.add(message)
        log.log(level, "%s (logged once)", message, exc_info=exc_info)
