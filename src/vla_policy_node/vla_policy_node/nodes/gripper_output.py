"""Where gripper positions go: std_msgs/Float64MultiArray on a topic, or control_msgs/action/GripperCommand goals
through an rclpy action client (ROS actions do not exist on the plain DDS transport: there the output publishes
nothing and says so in diagnostics). Either way only on change (`control.gripper.GripperGate` decides).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from vla_policy_node.msgs.joints import FLOAT64_ARRAY, encode_float64_array
from vla_policy_node.spec.embodiment import GripperSpec
from vla_policy_node.transport.base import Transport
from vla_policy_node.transport.qos import DEFAULT_QOS, QosProfile

log = logging.getLogger(__name__)


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

    def __init__(self, node: Any, action_name: str, max_effort: float,
                 destroy_when_stopped: Callable[[Callable[[], None]], None] | None = None) -> None:
        """destroy_when_stopped: RclpyTransport's (an action client destroyed while the executor spins can kill
        its thread); without it the client is destroyed at `close()`."""
        from control_msgs.action import GripperCommand
        from rclpy.action import ActionClient

        self._destroy_when_stopped = destroy_when_stopped
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
        if self._destroy_when_stopped is not None:
            self._destroy_when_stopped(self._client.destroy)
        else:
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
    return GripperActionOutput(node, gripper.topic, gripper.max_effort,
                               getattr(transport, "destroy_when_stopped", None))
