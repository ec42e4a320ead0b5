"""Controller messages, controller selection, gripper gating, EE poses from a URDF, and the tickers."""

from __future__ import annotations

import dataclasses
import threading
import time
import typing

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vla_policy_node.control.command import Command
from vla_policy_node.control.gripper import GripperGate, gripper_gate_for
from vla_policy_node.kinematics.rotation import rpy_from_matrix
from vla_policy_node.msgs import rosbags_factory
from vla_policy_node.msgs.commands import CONTROLLER_MSGTYPES, CommandEncoder, decode_command, resolve_controller
from vla_policy_node.msgs.stamps import time_to_seconds
from vla_policy_node.nodes.fake_arm_driver import chain_urdf
from vla_policy_node.nodes.robot_model import RobotModel
from vla_policy_node.nodes.timing import ThreadTicker
from vla_policy_node.spec.embodiment import ActionSpace, ConfigError, ControllerInterface, ControllerSpec

NEW = rosbags_factory()


def test_controller_type_switches_interface_and_topic(sim_arm):
    assert resolve_controller(sim_arm) is sim_arm
    forward = resolve_controller(sim_arm, "forward_command")
    assert forward.controller == ControllerSpec("forward_command", "/arm_controller/commands")
    custom = resolve_controller(sim_arm, "forward_command", "/my_ctrl/commands")
    assert custom.controller.topic == "/my_ctrl/commands"
    with pytest.raises(ConfigError, match="does not fit action space"):
        resolve_controller(sim_arm, "servo_twist")
    with pytest.raises(ConfigError, match="must be one of"):
        resolve_controller(sim_arm, "effort")


def test_controller_msgtypes_cover_exactly_the_interfaces():
    """resolve_controller takes a controller_type for a ControllerInterface when CONTROLLER_MSGTYPES has it."""
    assert set(CONTROLLER_MSGTYPES) == set(typing.get_args(ControllerInterface))


def test_servo_pose_cannot_carry_ee_delta_actions(sim_arm):
    twist_robot = dataclasses.replace(
        sim_arm, action_space=ActionSpace(type="ee_delta", ee_link="tool"),
        controller=ControllerSpec("servo_twist", "/servo_node/delta_twist_cmds"))
    assert resolve_controller(twist_robot).controller.interface == "servo_twist"
    with pytest.raises(ConfigError, match="takes ee_pose commands"):
        resolve_controller(twist_robot, "servo_pose")


@pytest.mark.parametrize("interface", ["joint_trajectory", "forward_command"])
def test_joint_commands_round_trip(sim_arm, interface):
    emb = resolve_controller(sim_arm, interface)
    encoder = CommandEncoder(emb, NEW, 0.004)
    arm = np.array([0.1, -0.2, 0.3, -0.4, 0.5, -0.6])
    msg = encoder.encode(Command(3.0, "joint_position", emb.joint_names, arm, 0.02, "policy", False), 3.0,
                         velocity=np.full(6, 0.25))
    assert msg.__msgtype__ == encoder.msgtype
    np.testing.assert_array_equal(decode_command(msg, interface, emb.joint_names), arm)
    if interface == "joint_trajectory":
        assert time_to_seconds(msg.header.stamp) == 0.0
        assert time_to_seconds(msg.points[0].time_from_start) == pytest.approx(0.004)
        np.testing.assert_array_equal(msg.points[0].velocities, np.full(6, 0.25))
        # joints are matched by name, whatever order a sender uses
        shuffled = decode_command(msg, interface, tuple(reversed(emb.joint_names)))
        np.testing.assert_array_equal(shuffled, arm[::-1])


def test_cartesian_commands_round_trip(repo_root):
    from vla_policy_node.spec import load_embodiment

    ur5e = load_embodiment(repo_root / "config" / "robots" / "ur5e.yaml")
    twist = CommandEncoder(ur5e, NEW, 0.008)
    value = np.array([0.01, -0.02, 0.03, 0.1, -0.2, 0.3])
    msg = twist.encode(Command(5.0, "ee_twist", ur5e.action_names[:6], value, None, "policy", False), 5.0)
    assert msg.header.frame_id == "base_link" and time_to_seconds(msg.header.stamp) == 5.0
    np.testing.assert_allclose(decode_command(msg, "servo_twist", ()), value)

    pose_robot = resolve_controller(dataclasses.replace(
        ur5e, action_space=dataclasses.replace(ur5e.action_space, type="ee_pose")), "servo_pose")
    assert pose_robot.controller.topic == "/servo_node/pose_target_cmds"
    pose = np.array([0.4, 0.1, 0.3, 0.5, -0.4, 2.0])
    msg = CommandEncoder(pose_robot, NEW, 0.008).encode(
        Command(5.0, "ee_pose", pose_robot.action_names[:6], pose, None, "policy", False), 5.0)
    q = msg.pose.orientation
    expected = Rotation.from_euler("xyz", pose[3:]).as_quat()  # ROS rpy = fixed-axis x, y, z
    np.testing.assert_allclose(np.abs(np.dot([q.x, q.y, q.z, q.w], expected)), 1.0, atol=1e-12)
    np.testing.assert_allclose(decode_command(msg, "servo_pose", ()), pose, atol=1e-12)


def test_gripper_gate_sends_changes_and_the_settled_value():
    gate = GripperGate()
    assert [gate.offer(v, t) for t, v in enumerate([0.04, 0.04, 0.03, 0.03, 0.03])] == [1, 0, 1, 0, 0]
    slow = GripperGate(min_interval=0.1)
    sent = [v for k, v in enumerate([0.0, 0.01, 0.02, 0.03, 0.04, 0.04, 0.04]) if slow.offer(v, k * 0.04)]
    # ramping: at most every 0.1 s; the settled value is always sent
    assert sent == [0.0, 0.03, 0.04]
    slow.reset()
    assert slow.offer(0.04, 10.0)


def test_action_grippers_are_rate_limited(franka, sim_arm):
    assert gripper_gate_for(franka.gripper).min_interval == 0.1
    assert gripper_gate_for(sim_arm.gripper).min_interval == 0.0


@pytest.mark.parametrize("rpy", [(0.3, -0.2, 1.1), (3.1, 0.2, -2.9), (np.pi, 0.0, 0.0), (0.0, 1.5, 0.4)])
def test_rpy_from_matrix_matches_scipy(rpy):
    matrix = Rotation.from_euler("xyz", rpy).as_matrix()
    back = Rotation.from_euler("xyz", rpy_from_matrix(matrix)).as_matrix()
    np.testing.assert_allclose(back, matrix, atol=1e-9)


def test_robot_model_from_description_gives_tool_path_and_ee_pose(sim_arm):
    emb = dataclasses.replace(sim_arm, action_space=ActionSpace(type="ee_pose", frame="world", ee_link="tool"),
                              controller=ControllerSpec("servo_pose", "/servo/pose_target_cmds"))
    model = RobotModel(emb)
    assert not model.ready and "robot_description" in model.problem
    model.on_description(NEW("std_msgs/msg/String", data=chain_urdf(emb)))
    assert model.ready and model.problem == "" and model.path_frame == "world"
    np.testing.assert_allclose(model.tool_positions(np.zeros((2, 6))), [[0, 0, 0.7]] * 2, atol=1e-12)
    q = np.array([0.0, np.pi / 2, 0.0, 0.0, 0.0, 0.0, 0.03])  # joint2 (a y axis) folds the upper arm forward
    np.testing.assert_allclose(model.ee_pose(q), [0.5, 0.0, 0.2, 0.0, np.pi / 2, 0.0], atol=1e-9)
    model.on_description(NEW("std_msgs/msg/String", data="<robot"))
    assert model.ready and "unusable" in model.problem  # a bad update keeps the last good model


def test_thread_ticker_keeps_its_rate_and_survives_exceptions():
    calls = []

    def job() -> None:
        calls.append(time.monotonic())
        if len(calls) == 3:
            raise RuntimeError("one bad tick")

    ticker = ThreadTicker(0.01, job, "test-ticker")
    ticker.start()
    time.sleep(0.3)
    ticker.stop()
    assert ticker.job.failures == 1
    assert 20 <= len(calls) <= 32
    assert not any(t.name == "test-ticker" for t in threading.enumerate())


def test_topic_clock_follows_clock_messages_and_nodes_wait_for_it(sim_arm):
    from test.nodes.fakes import ScriptedPolicy, ServiceTransport
    from vla_policy_node.msgs.stamps import make_time
    from vla_policy_node.nodes.mux_runtime import MuxRuntime
    from vla_policy_node.nodes.policy_runtime import PolicyRuntime
    from vla_policy_node.nodes.topic_clock import TopicClock

    t = ServiceTransport(clock=1e9)  # the wall clock: must not be used
    clock = TopicClock(t)
    policy = PolicyRuntime(t, sim_arm, ScriptedPolicy(sim_arm), clock=clock.now)
    mux = MuxRuntime(t, sim_arm, clock=clock.now)
    assert clock.now() == 0.0
    assert policy.control_step() is None and mux.control_step() is None
    policy.status_step()
    assert t.messages("/vla/status") == []  # nothing is stamped before simulated time starts
    t.inject("/clock", t.new_message("rosgraph_msgs/msg/Clock", clock=make_time(t.new_message, 12.5)))
    assert clock.now() == 12.5 and clock.samples == 1
    policy.status_step()
    assert time_to_seconds(t.messages("/vla/status")[-1].header.stamp) == 12.5


def test_the_gripper_gate_sends_every_change_after_the_clock_jumped_back():
    """Sim time restarting (a bag loop, /clock going back) must not hold back gripper commands until the clock
    passes the old time: the controller would then get one jump of many ticks' travel."""

    for gate in (GripperGate(), GripperGate(min_interval=0.1)):
        assert gate.offer(0.010, 100.0)
        assert gate.offer(0.012, 50.0)  # clock went back 50 s: still sent
        assert gate.offer(0.014, 50.2)
