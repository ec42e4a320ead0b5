"""The command mux node's wiring over any Transport: inputs from config/mux.yaml's topics, a ControlLoop that
follows the policy node's command stream (control/loop.py: the tick, the mux, the safety filter), and the
robot's controller (and gripper) as output. Runs on the robot PC, next to the controllers. Glue only.

In:  /vla/policy_command (the controller's message type), /vla/policy_gripper_command (Float64MultiArray,
     latched), teleop: /vla/teleop/joint_command (JointState), /vla/teleop/twist_cmds (TwistStamped),
     /vla/teleop/joint_jog (JointJog), /vla/teleop/deadman (Bool), locks (Bool: /vla/estop), joint states.
Out: the robot YAML's controller topic at rates.control_hz, the gripper on change, /vla/mux_status
     (vla_msgs/PolicyStatus: active_source, estop_latched, stale inputs, clamps), /diagnostics.
Services: ~/reset_estop (vla_msgs/ResetEstop), i.e. /vla_command_mux/reset_estop; ~/set_paused
(vla_msgs/SetPaused): paused false resumes the policy after a teleop takeover (config/mux.yaml: handback), true
holds it; the resume topic (std_msgs/Bool, a pedal or button) does the same with a press.

The mux computes a command every tick from its first tick with a known robot state on (holding where the robot
is while no source commands), but publishes only while a source commands and until a hold has settled
(`control.output_gate`): in a dry run, or while nobody commands, nothing from us reaches the controller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_policy_node.control.command import Command, CommandSpace
from vla_policy_node.control.config import ControlConfig
from vla_policy_node.control.gripper import gripper_gate_for
from vla_policy_node.control.loop import ControlLoop
from vla_policy_node.control.mux_file import MuxFile, MuxTopics, TeleopTopics
from vla_policy_node.control.native import native_status
from vla_policy_node.control.output_gate import OutputGate
from vla_policy_node.control.sources import CommandStream
from vla_policy_node.control.status import Diagnostic, Level
from vla_policy_node.msgs.commands import CommandEncoder, decode_command
from vla_policy_node.msgs.errors import MessageError, MessageErrorCounter
from vla_policy_node.msgs.geometry import TWIST_STAMPED, decode_twist_stamped
from vla_policy_node.msgs.joints import (
    FLOAT64_ARRAY,
    JOINT_JOG,
    JOINT_STATE,
    decode_float64_array,
    decode_joint_jog,
    decode_joint_state,
)
from vla_policy_node.nodes.gripper_output import make_gripper_output
from vla_policy_node.nodes.node_support import BOOL, message_error_diagnostic
from vla_policy_node.nodes.robot_model import RobotModel
from vla_policy_node.nodes.status_output import StatusOutput
from vla_policy_node.nodes.timing import ControlTimers
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.repo_files import REPO_CONFIG
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import DEFAULT_QOS, LATCHED_QOS, SENSOR_DATA_QOS

log = logging.getLogger(__name__)

RESET_ESTOP = "vla_msgs/srv/ResetEstop"
SET_PAUSED = "vla_msgs/srv/SetPaused"
DEFAULT_TOPICS = MuxTopics(
    policy="/vla/policy_command",
    teleop=TeleopTopics("/vla/teleop/joint_command", "/vla/teleop/twist_cmds", "/vla/teleop/joint_jog"),
    deadman="/vla/teleop/deadman",
    locks={"estop": "/vla/estop"},
    resume="/vla/teleop/resume",
)


def default_mux_config_path() -> Path | None:
    """config/mux.yaml of the installed vla_bringup, else of this source tree; None if neither exists."""
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("vla_bringup")) / "config" / "mux.yaml")
    except (ImportError, LookupError, ValueError):
        pass
    candidates.append(REPO_CONFIG / "mux.yaml")
    return next((path for path in candidates if path.is_file()), None)


@dataclass(frozen=True)
class MuxNodeParams:
    """policy_timeout: the policy node's stream loses control after this silence (s)."""

    node_name: str = "vla_command_mux"
    topics: MuxTopics = DEFAULT_TOPICS
    policy_gripper_topic: str = "/vla/policy_gripper_command"
    control: ControlConfig = field(default_factory=ControlConfig)
    policy_timeout: float = 0.5
    status_topic: str = "/vla/mux_status"
    status_hz: float = 10.0
    diagnostics_period: float = 1.0
    urdf_path: str = ""

    def __post_init__(self) -> None:
        if not self.policy_timeout > 0:
            raise ValueError("policy_timeout must be positive")

    @classmethod
    def from_mux_file(cls, mux_file: MuxFile, **overrides: Any) -> MuxNodeParams:
        return cls(topics=mux_file.topics, control=ControlConfig(mux=mux_file.config),
                   policy_timeout=mux_file.policy_timeout, **overrides)


class MuxRuntime:
    def __init__(self, transport: Transport, embodiment: Embodiment, params: MuxNodeParams | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        """embodiment: with the controller already resolved (`resolve_controller`)."""
        self.transport = transport
        self.embodiment = embodiment
        self.params = params = params or MuxNodeParams()
        self.status_hz = params.status_hz
        self.clock = clock or transport.now
        stream = CommandStream(CommandSpace.from_embodiment(embodiment), params.policy_timeout)
        self.loop = ControlLoop(embodiment, params.control, stream)
        self.errors = MessageErrorCounter()
        self.encoder = CommandEncoder(embodiment, transport.new_message, self.loop.period)
        self.interface = embodiment.controller.interface
        self._arm_names = self.loop.space.arm_names
        self.robot = RobotModel(embodiment, transport, params.urdf_path) if embodiment.action_space.cartesian \
            else None
        self._controller_pub = transport.publisher(embodiment.controller.topic, self.encoder.msgtype, DEFAULT_QOS)
        self.gripper = make_gripper_output(transport, embodiment.gripper)
        self._gripper_gate = gripper_gate_for(embodiment.gripper)
        self._gate = OutputGate()
        self.status_output = StatusOutput(transport, params.status_topic, params.node_name, embodiment.name,
                                          params.diagnostics_period)
        topics = params.topics
        sub = self._subscribe
        self._subscriptions = [
            sub(topics.policy, self.encoder.msgtype, self.on_policy_command, DEFAULT_QOS),
            sub(params.policy_gripper_topic, FLOAT64_ARRAY, self.on_policy_gripper, LATCHED_QOS),
            sub(embodiment.joint_states.topic, JOINT_STATE, self.on_joint_state, SENSOR_DATA_QOS),
            sub(topics.teleop.joint_command, JOINT_STATE, self.on_teleop_joints, DEFAULT_QOS),
            sub(topics.teleop.twist, TWIST_STAMPED, self.on_teleop_twist, DEFAULT_QOS),
            sub(topics.teleop.joint_jog, JOINT_JOG, self.on_teleop_jog, DEFAULT_QOS),
        ]
        if topics.deadman:
            self._subscriptions.append(sub(topics.deadman, BOOL, self.on_deadman, DEFAULT_QOS))
        if topics.resume:
            self._subscriptions.append(sub(topics.resume, BOOL, self.on_resume, DEFAULT_QOS))
        for name, topic in topics.locks.items():
            self._subscriptions.append(sub(topic, BOOL, self._lock_callback(name), DEFAULT_QOS))
        self._services = [transport.service("~/reset_estop", RESET_ESTOP, self._serve_reset_estop),
                          transport.service("~/set_paused", SET_PAUSED, self._serve_set_paused)]
        self._timers = ControlTimers(transport, params.node_name, self.loop.period, self.control_step,
                                     params.status_hz, self.status_step)
        self.commands_sent = 0
        self.last_command: Command | None = None
        log.info("%s: %s -> %s (%s), locks %s; %s", params.node_name, topics.policy, embodiment.controller.topic,
                 self.interface, dict(topics.locks), native_status())

    def _subscribe(self, topic: str, msgtype: str, handler: Callable[[Any], None], qos: Any) -> Any:
        """Subscriptions whose rejected messages (bad fields, wrong joints) are counted per topic."""

        def callback(msg: Any) -> None:
            try:
                handler(msg)
            except MessageError as error:
                self.errors.record(error, topic)
            except ValueError as error:
                self.errors.record(MessageError("rejected", str(error), msgtype), topic)

        return self.transport.subscribe(topic, msgtype, callback, qos)

    # ------------------------------------------------------------------------------------------- inputs
    def on_policy_command(self, msg: Any) -> None:
        self.loop.on_policy_command(decode_command(msg, self.interface, self._arm_names), self.clock())

    def on_policy_gripper(self, msg: Any) -> None:
        self.loop.on_policy_gripper(float(decode_float64_array(msg, expected_size=1)[0]))

    def on_joint_state(self, msg: Any) -> None:
        data = decode_joint_state(msg)
        self.loop.on_joint_state(data.stamp, data.names, data.positions, self.clock())

    def on_teleop_joints(self, msg: Any) -> None:
        data = decode_joint_state(msg)
        self.loop.on_teleop_joints(data.names, data.positions, self.clock())

    def on_teleop_twist(self, msg: Any) -> None:
        twist = decode_twist_stamped(msg)
        self.loop.on_teleop_twist(twist.linear, twist.angular, self.clock())

    def on_teleop_jog(self, msg: Any) -> None:
        jog = decode_joint_jog(msg)
        self.loop.on_teleop_jog(jog.joint_names, jog.displacements, jog.velocities, jog.duration, self.clock())

    def on_deadman(self, msg: Any) -> None:
        self.loop.on_deadman(bool(msg.data), self.clock())

    def on_resume(self, msg: Any) -> None:
        if self.loop.on_resume_signal(bool(msg.data), self.clock()):
            log.warning("policy resumed (resume topic)")

    def _lock_callback(self, name: str) -> Callable[[Any], None]:
        def on_lock(msg: Any) -> None:
            self.loop.on_lock(name, bool(msg.data), self.clock())

        return on_lock

    # ------------------------------------------------------------------------------------------ control
    def control_step(self) -> Command | None:
        now = self.clock()
        if now <= 0.0:  # simulated time that has not started
            return None
        ee_pose = self.robot.ee_pose(self.loop.measured_state) if self.robot is not None else None
        command = self.loop.tick(now, None, ee_pose)
        if command is None:
            return None
        self.last_command = command
        if self._gate.offer(command, now):
            self._publish(command, now)
        return command

    def _publish(self, command: Command, now: float) -> None:
        """The command to the controller (and the gripper on change)."""
        velocity = self.loop.filter.last_velocity if command.kind == "joint_position" else None
        self._controller_pub.publish(self.encoder.encode(command, now, velocity))
        if command.gripper is not None and self._gripper_gate.offer(command.gripper, now):
            self.gripper.send(command.gripper, now)
        self.commands_sent += 1

    def status_step(self) -> None:
        now = self.clock()
        if now > 0.0:
            self.status_output.publish(now, self.loop.status(now), self.diagnostics)

    def diagnostics(self, now: float) -> list[Diagnostic]:
        out = self.loop.diagnostics(now)
        out.append(message_error_diagnostic(self.errors))
        problem = self.gripper.problem
        out.append(Diagnostic(Level.WARN if problem else Level.OK, "gripper",
                              problem or f"{self.gripper.sent} gripper command(s) sent"))
        if self.robot is not None and self.robot.problem:
            out.append(Diagnostic(Level.WARN, "kinematics", self.robot.problem))
        return out

    def _serve_reset_estop(self, request: Any) -> Any:
        ok, message = self.loop.reset_estop(self.clock())
        log.warning("reset_estop: %s", message)
        return self.transport.new_response(RESET_ESTOP, success=ok, message=message)

    def _serve_set_paused(self, request: Any) -> Any:
        if request.paused:
            self.loop.pause()
            message = "policy paused at the mux (teleop still works)"
        else:
            message = self.loop.resume()
        log.warning("set_paused: %s", message)
        return self.transport.new_response(SET_PAUSED, success=True, message=message)

    def set_status_rate(self, hz: float) -> None:
        """The /status (and diagnostics check) timer's rate, applied at once when running."""
        self._timers.set_status_rate(hz)
        self.status_hz = self._timers.status_hz

    # ---------------------------------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._timers.start()

    def stop(self) -> None:
        self._timers.stop()

    def close(self) -> None:
        self.stop()
        for service in self._services:
            service.close()
        for subscription in self._subscriptions:
            subscription.close()
        self.gripper.close()
        if self.robot is not None:
            self.robot.close()
