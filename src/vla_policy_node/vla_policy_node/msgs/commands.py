"""Commands <-> the messages arm controllers take.

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

Gripper outputs (topics, the GripperCommand action) are in `nodes/gripper_output.py`; when a gripper
command is worth sending is `control.gripper.GripperGate`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeGuard

import numpy as np

from vla_policy_node.control.command import Command, CommandSpace
from vla_policy_node.kinematics.rotation import quat_from_rpy, rpy_from_quat
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
    JointTrajectoryData,
    decode_float64_array,
    decode_joint_trajectory,
    encode_float64_array,
    encode_joint_trajectory,
)
from vla_policy_node.spec.embodiment import ConfigError, ControllerInterface, ControllerSpec, Embodiment

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
    if not _is_interface(interface):
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


def _is_interface(name: str) -> TypeGuard[ControllerInterface]:
    """`name` is a controller interface (CONTROLLER_MSGTYPES has one entry per ControllerInterface)."""
    return name in CONTROLLER_MSGTYPES


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


def trajectory_command(data: JointTrajectoryData, arm_names: tuple[str, ...]) -> np.ndarray:
    """The command a decoded JointTrajectory gives: its first point in `arm_names` order (MessageError if a joint
    is missing)."""
    return point_command(data.joint_names, data.positions[0], arm_names)


def point_command(joint_names: tuple[str, ...], positions: np.ndarray, arm_names: tuple[str, ...]) -> np.ndarray:
    """A trajectory point's positions (in `joint_names` order) in `arm_names` order, a new array (MessageError if
    a joint is missing): `trajectory_command` of a point read on its own (msgs.fast_cdr)."""
    order = _ORDERS.get((joint_names, arm_names))
    if order is None:
        index = {name: i for i, name in enumerate(joint_names)}
        missing = [name for name in arm_names if name not in index]
        if missing:
            raise MessageError("missing_joint", f"trajectory lacks joints {missing}", JOINT_TRAJECTORY)
        order = np.array([index[name] for name in arm_names], dtype=np.intp)  # an index array, converted once
        if len(_ORDERS) >= 32:
            _ORDERS.clear()
        _ORDERS[(joint_names, arm_names)] = order
    return positions[order]


_ORDERS: dict[tuple[tuple[str, ...], tuple[str, ...]], np.ndarray] = {}  # (names, wanted) -> indices, recent


def decode_command(msg: Any, interface: str, arm_names: tuple[str, ...]) -> np.ndarray:
    """A controller message -> command-space arm values in `arm_names` order (inverse of CommandEncoder).

    JointTrajectory: the first point (the present command in a stream); joints are matched by name.
    MessageError for anything that does not describe exactly these joints/axes."""
    if interface == "joint_trajectory":
        return trajectory_command(decode_joint_trajectory(msg), arm_names)
    if interface == "forward_command":
        return decode_float64_array(msg, expected_size=len(arm_names))
    if interface == "servo_twist":
        twist = decode_twist_stamped(msg)
        return np.concatenate([twist.linear, twist.angular])
    pose = decode_pose_stamped(msg)
    x, y, z, w = (float(v) for v in pose.orientation)
    return np.concatenate([pose.position, rpy_from_quat((w, x, y, z))])
