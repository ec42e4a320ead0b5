"""Commands <-> the messages arm controllers take, and gripper outputs.

One mapping, used by the policy node (to /vla/policy_command or the preview topic), the command mux (from
/vla/policy_command, to the controller) and the fake arm driver (from the controller topic):

- joint_trajectory -> trajectory_msgs/JointTrajectory, MoveIt Servo's convention for streaming to
  joint_trajectory_controller: header.stamp 0 ("start now"), one point at time_from_start = one control period
  with the command's positions and velocities. Each message replaces the controller's trajectory; the
  controller splines from its current reference to the point, so a stream of them at the control rate is a
  smooth reference (the velocities give the spline its end slope). If the stream stops, the controller holds
  the last point: the safe failure. A multi-point horizon would let the arm run on after the stream stops
  and would need the plan, which only the policy node has; the mux (which only forwards the present command)
  would have to invent it.
- forward_command -> std_msgs/Float64MultiArray of joint positions (arm joints, in config order).
- servo_twist -> geometry_msgs/TwistStamped in the action frame, stamped now.
- servo_pose -> geometry_msgs/PoseStamped in the action frame, stamped now.

Grippers: `forward_command` -> Float64MultiArray [position] on the gripper topic; `gripper_action` ->
control_msgs/action/GripperCommand through an rclpy action client (ROS actions do not exist on the plain DDS
transport: there the gripper output publishes nothing and says so in diagnostics). Either way only on change.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Protocol

import numpy as np

from vla_policy_node.control.command import Command, CommandSpace
from vla_policy_node.control.rotation import quat_from_rpy, rpy_from_quat
from vla_policy_node.msgs.errors import MessageError
from vla_policy_node.msgs.fields import MessageFactory
from vla_policy_node.msgs.geometry import (
    POSE_STAMPED,
    TWIST_STAMPED,
    decode_pose_stamped,
    decode_twist_stamped,
    encode_pose_stamped,
    encode_twist_stamped,
)
from vla_policy_node.msgs.joints import (
    FLOAT64_ARRAY,
    JOINT_TRAJECTORY,
    decode_float64_array,
    decode_joint_trajectory,
    encode_float64_array,
    encode_joint_trajectory,
)
from vla_policy_node.policy.embodiment import ConfigError, ControllerSpec, Embodiment, GripperSpec
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import DEFAULT_QOS, QosProfile

log = logging.getLogger(__name__)

CONTROLLER_MSGTYPES = {
    "joint_trajectory": JOINT_TRAJECTORY,
    "forward_command": FLOAT64_ARRAY,
    "servo_twist": TWIST_STAMPED,
    "servo_pose": POSE_STAMPED,
}
COMMAND_KINDS = {
    "joint_trajectory": "joint_position",
    "forward_command": "joint_position",
    "servo_twist": "ee_twist",
    "servo_pose": "ee_pose",
}
# The last name of a controller's topic for each interface (ros2_controllers and MoveIt Servo defaults).
_TOPIC_SUFFIX = {
    "joint_trajectory": "joint_trajectory",
    "forward_command": "commands",
    "servo_twist": "delta_twist_cmds",
    "servo_pose": "pose_target_cmds",
}


def resolve_controller(embodiment: Embodiment, controller_type: str = "", topic: str = "") -> Embodiment:
    """The embodiment with the controller the node should drive.

    controller_type "" keeps the robot YAML's interface. Another interface takes `topic` if given, else the
    YAML's topic with its last name swapped (`/arm_controller/joint_trajectory` -> `/arm_controller/commands`).
    ConfigError if the interface does not fit the action space or the command space."""
    current = embodiment.controller
    interface = controller_type or current.interface
    if interface not in CONTROLLER_MSGTYPES:
        raise ConfigError(f"controller_type must be one of {sorted(CONTROLLER_MSGTYPES)}, got {interface!r}")
    if not topic:
        topic = current.topic
        if interface != current.interface:
            head, _, tail = current.topic.rpartition("/")
            topic = f"{head}/{_TOPIC_SUFFIX[interface]}" if tail == _TOPIC_SUFFIX[current.interface] else topic
    if (interface, topic) == (current.interface, current.topic):
        resolved = embodiment
    else:
        resolved = dataclasses.replace(embodiment, controller=ControllerSpec(interface=interface, topic=topic))
    kind = CommandSpace.from_embodiment(resolved).kind
    if COMMAND_KINDS[interface] != kind:
        raise ConfigError(f"controller {interface!r} takes {COMMAND_KINDS[interface]} commands, but action space "
                          f"{resolved.action_space.type!r} produces {kind}")
    return resolved


class CommandEncoder:
    """Command -> the controller's message (see the module docstring)."""

    def __init__(self, embodiment: Embodiment, new: MessageFactory, period: float) -> None:
        self.interface = embodiment.controller.interface
        self.msgtype = CONTROLLER_MSGTYPES[self.interface]
        self.frame = embodiment.action_space.frame
        self.period = float(period)
        self._new = new

    def encode(self, command: Command, now: float, velocity: np.ndarray | None = None) -> Any:
        """velocity: the arm's commanded velocity (joint_trajectory only; zeros when not given)."""
        new, arm = self._new, command.arm
        if self.interface == "joint_trajectory":
            v = np.zeros_like(arm) if velocity is None else np.asarray(velocity, dtype=np.float64)
            return encode_joint_trajectory(new, command.names, arm[None, :], [self.period], v[None, :], stamp=0.0)
        if self.interface == "forward_command":
            return encode_float64_array(new, arm)
        if self.interface == "servo_twist":
            return encode_twist_stamped(new, arm[:3], arm[3:6], stamp=now, frame_id=self.frame)
        w, x, y, z = quat_from_rpy(float(arm[3]), float(arm[4]), float(arm[5]))
        return encode_pose_stamped(new, arm[:3], (x, y, z, w), stamp=now, frame_id=self.frame)


def decode_command(msg: Any, interface: str, arm_names: tuple[str, ...]) -> np.ndarray:
    """A controller message -> command-space arm values in `arm_names` order (inverse of CommandEncoder).

    JointTrajectory: the first point (the present command in a stream); joints are matched by name.
    MessageError for anything that does not describe exactly these joints/axes."""
    if interface == "joint_trajectory":
        data = decode_joint_trajectory(msg)
        index = {name: i for i, name in enumerate(data.joint_names)}
        missing = [name for name in arm_names if name not in index]
        if missing:
            raise MessageError("missing_joint", f"trajectory lacks joints {missing}", JOINT_TRAJECTORY)
        return data.positions[0, [index[name] for name in arm_names]]
    if interface == "forward_command":
        return decode_float64_array(msg, expected_size=len(arm_names))
    if interface == "servo_twist":
        twist = decode_twist_stamped(msg)
        return np.concatenate([twist.linear, twist.angular])
    pose = decode_pose_stamped(msg)
    x, y, z, w = (float(v) for v in pose.orientation)
    return np.concatenate([pose.position, rpy_from_quat((w, x, y, z))])


# ------------------------------------------------------------------------------------------------ gripper


class GripperGate:
    """Decides when a gripper command is worth sending: only on change.

    A value is sent when it differs from the last one sent and either `min_interval` has passed since then
    or the value has settled (equal to the previous offer), so the final position of a ramp is always sent
    and a slow action server is not flooded with goals while the command ramps."""

    def __init__(self, min_interval: float = 0.0, tolerance: float = 1e-9) -> None:
        self.min_interval = float(min_interval)
        self.tolerance = float(tolerance)
        self.last_sent: float | None = None
        self._last_time = -math.inf
        self._previous: float | None = None

    def offer(self, value: float, now: float) -> bool:
        previous, self._previous = self._previous, value
        if self.last_sent is not None and abs(value - self.last_sent) <= self.tolerance:
            return False
        settled = previous is not None and abs(value - previous) <= self.tolerance
        if self.last_sent is not None and now - self._last_time < self.min_interval and not settled:
            return False
        self.last_sent, self._last_time = value, now
        return True

    def reset(self) -> None:
        """Forget what was sent (e.g. the output changed): the next offer is sent."""
        self.last_sent = None
        self._previous = None


class GripperOutput(Protocol):
    """Where gripper positions go. `problem`: why nothing is sent ("" when it works)."""

    problem: str
    sent: int

    def send(self, position: float, now: float) -> None: ...

    def close(self) -> None: ...


class FloatGripperOutput:
    """std_msgs/Float64MultiArray [position] (forward_command_controller, and the policy -> mux link)."""

    def __init__(self, transport: Transport, topic: str, qos: QosProfile = DEFAULT_QOS) -> None:
        self.topic = topic
        self.problem = ""
        self.sent = 0
        self._transport = transport
        self._publisher = transport.publisher(topic, FLOAT64_ARRAY, qos)

    def send(self, position: float, now: float) -> None:
        self._publisher.publish(encode_float64_array(self._transport.new_message, [position]))
        self.sent += 1

    def close(self) -> None:
        self._publisher.close()


class NullGripperOutput:
    """Publishes nothing; `problem` says why (reported once in the log, and in diagnostics)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        self.sent = 0
        if problem:
            log.warning("gripper: %s", problem)

    def send(self, position: float, now: float) -> None:
        pass

    def close(self) -> None:
        pass


class GripperActionOutput:
    """control_msgs/action/GripperCommand goals through an rclpy action client (rclpy only, untested here).

    Goals are sent without waiting for the result; a newer goal preempts the older one on the server."""

    def __init__(self, node: Any, action_name: str, max_effort: float) -> None:
        from control_msgs.action import GripperCommand
        from rclpy.action import ActionClient

        self.problem = ""
        self.sent = 0
        self._goal_type = GripperCommand.Goal
        self._client = ActionClient(node, GripperCommand, action_name)
        self._max_effort = float(max_effort)
        self._action_name = action_name

    def send(self, position: float, now: float) -> None:
        if not self._client.server_is_ready():
            self.problem = f"gripper action server {self._action_name} not available"
            return
        goal = self._goal_type()
        goal.command.position = float(position)
        goal.command.max_effort = self._max_effort
        self._client.send_goal_async(goal)
        self.problem = ""
        self.sent += 1

    def close(self) -> None:
        self._client.destroy()


def make_gripper_output(transport: Transport, gripper: GripperSpec | None) -> GripperOutput:
    """The robot's gripper interface on this transport (see the module docstring)."""
    if gripper is None or gripper.interface == "none":
        return NullGripperOutput("")
    if gripper.interface == "forward_command":
        return FloatGripperOutput(transport, gripper.topic)
    node = getattr(transport, "node", None)
    if node is None:
        return NullGripperOutput(f"{gripper.interface} on {gripper.topic} needs ROS actions, which the DDS "
                                 "transport does not implement: no gripper commands are sent (run under rclpy)")
    return GripperActionOutput(node, gripper.topic, gripper.max_effort)


def gripper_gate_for(gripper: GripperSpec | None) -> GripperGate:
    """Topics take every change; an action server gets at most ~10 goals/s plus the settled value."""
    if gripper is not None and gripper.interface == "gripper_action":
        return GripperGate(min_interval=0.1, tolerance=1e-4 * (gripper.upper - gripper.lower))
    return GripperGate()
