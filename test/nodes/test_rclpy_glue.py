"""The rclpy-only glue (timers, parameters, the gripper action client) against stand-in rclpy modules.

They record how the nodes call rclpy, so what is checked is our side of the contract (which call, which
arguments) on machines without ROS 2; where a real ROS 2 is sourced, test/ros2/ runs the same glue against it
and these are skipped.
"""

from __future__ import annotations

import sys
import types

import pytest

from test.ros_env import ros2_missing
from vla_policy_node.nodes.gripper_output import GripperActionOutput, make_gripper_output
from vla_policy_node.nodes.node_support import declare_parameters, node_clock
from vla_policy_node.nodes.timing import RclpyTicker, ThreadTicker, make_ticker

pytestmark = pytest.mark.skipif(not ros2_missing(), reason="real ROS 2 present: test/ros2 covers the rclpy glue")


class FakeParameter:
    def __init__(self, value):
        self.value = value


class FakeNode:
    """Parameters given on the command line (`--ros-args -p`) are `overrides`."""

    def __init__(self, overrides=None):
        self.overrides = overrides or {}
        self.declared = {}
        self.timers = []

    def has_parameter(self, name):
        return name in self.declared

    def declare_parameter(self, name, default, descriptor=None):
        self.declared[name] = self.overrides.get(name, default)
        return FakeParameter(self.declared[name])

    def get_parameter(self, name):
        return FakeParameter(self.declared[name])

    def create_timer(self, period, callback, callback_group=None):
        self.timers.append((period, callback, callback_group))
        return len(self.timers)

    def destroy_timer(self, timer):
        self.timers[timer - 1] = None


class FakeRclpyTransport:
    def __init__(self, node):
        self.node = node

    def now(self):
        return 7.0


@pytest.fixture
def fake_rclpy(monkeypatch):
    groups = types.ModuleType("rclpy.callback_groups")
    groups.MutuallyExclusiveCallbackGroup = type("MutuallyExclusiveCallbackGroup", (), {})
    sent = []

    class ActionClient:
        ready = True

        def __init__(self, node, action_type, name):
            self.name = name

        def server_is_ready(self):
            return ActionClient.ready

        def send_goal_async(self, goal):
            sent.append((self.name, goal.command.position, goal.command.max_effort))

        def destroy(self):
            pass

    action = types.ModuleType("rclpy.action")
    action.ActionClient = ActionClient

    class GripperCommand:
        class Goal:
            def __init__(self):
                self.command = types.SimpleNamespace(position=0.0, max_effort=0.0)

    control = types.ModuleType("control_msgs.action")
    control.GripperCommand = GripperCommand
    interfaces = types.ModuleType("rcl_interfaces.msg")
    interfaces.ParameterDescriptor = lambda **kwargs: types.SimpleNamespace(**kwargs)
    interfaces.IntegerRange = interfaces.FloatingPointRange = interfaces.ParameterDescriptor
    for name, module in {"rclpy": types.ModuleType("rclpy"), "rclpy.callback_groups": groups,
                         "rcl_interfaces": types.ModuleType("rcl_interfaces"), "rcl_interfaces.msg": interfaces,
                         "rclpy.action": action, "control_msgs": types.ModuleType("control_msgs"),
                         "control_msgs.action": control}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return types.SimpleNamespace(sent=sent, ActionClient=ActionClient)


def test_ros_parameters_override_the_command_line(fake_rclpy):
    node = FakeNode({"dry_run": False, "checkpoint": "/ckpt"})
    values = declare_parameters(FakeRclpyTransport(node), {"dry_run": True, "checkpoint": "", "device": "cpu"})
    assert values == {"dry_run": False, "checkpoint": "/ckpt", "device": "cpu"}
    assert declare_parameters(object(), {"a": 1}) == {"a": 1}  # no rclpy: the command line as is


def test_timers_are_node_timers_in_their_own_callback_groups(fake_rclpy):
    node = FakeNode()
    transport = FakeRclpyTransport(node)
    calls = []
    control = make_ticker(transport, 0.01, lambda: calls.append(1), "control")
    status = make_ticker(transport, 0.1, lambda: 1 / 0, "status")
    assert isinstance(control, RclpyTicker) and isinstance(make_ticker(object(), 0.1, print, "x"), ThreadTicker)
    control.start()
    status.start()
    (p1, cb1, g1), (p2, cb2, g2) = node.timers
    assert (p1, p2) == (0.01, 0.1) and g1 is not g2 and g1 is not None
    cb1()
    cb2()  # an exception must not reach the executor (it would end spin)
    assert calls == [1] and status.job.failures == 1
    control.stop()
    assert node.timers[0] is None
    assert node_clock(transport, use_sim_time=True)() == 7.0  # rclpy's clock handles sim time itself


def test_gripper_action_goals_only_when_the_server_is_up(fake_rclpy, franka):
    transport = FakeRclpyTransport(FakeNode())
    output = make_gripper_output(transport, franka.gripper)
    assert isinstance(output, GripperActionOutput) and output.problem == ""
    output.send(0.02, 1.0)
    assert fake_rclpy.sent == [("/fr3_gripper/gripper_action", 0.02, franka.gripper.max_effort)]
    fake_rclpy.ActionClient.ready = False
    output.send(0.03, 2.0)
    assert len(fake_rclpy.sent) == 1 and "not available" in output.problem
