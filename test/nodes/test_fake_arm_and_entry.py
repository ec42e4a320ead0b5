"""The fake arm driver's physics and streams, and the node entry points' argument handling."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from test.nodes.fakes import ServiceTransport
from vla_policy_node.kinematics.urdf import default_tip, parse_urdf
from vla_policy_node.msgs import decode_compressed_image, decode_image, decode_joint_state, encode_joint_trajectory
from vla_policy_node.nodes import command_mux_node, policy_node
from vla_policy_node.nodes.fake_arm_driver import FakeArm, FakeArmParams
from vla_policy_node.transport.qos import LATCHED_QOS


def test_fake_arm_tracks_commands_to_first_order(sim_arm):
    t = ServiceTransport(clock=10.0)
    arm = FakeArm(t, sim_arm, FakeArmParams(tau=0.05, initial=(0.0,) * 7))
    arm.joint_step()
    target = np.array([0.5, -0.5, 0.2, 0.0, 0.0, 10.0])  # joint6 beyond its limit: clamped to 3.0
    t.inject("/arm_controller/joint_trajectory",
             encode_joint_trajectory(t.new_message, sim_arm.joint_names, target[None, :], [0.01]))
    t.advance(0.05)
    arm.joint_step()
    state = decode_joint_state(t.messages("/joint_states")[-1])
    assert state.names == sim_arm.state_names and state.stamp == pytest.approx(10.05)
    expected = np.clip(target, -3, 3) * (1 - math.exp(-1))  # one time constant
    np.testing.assert_allclose(state.positions[:6], expected, rtol=1e-9)
    np.testing.assert_allclose(state.velocities[:6], expected / 0.05, rtol=1e-9)


def test_fake_arm_streams_cameras_until_switched_off(sim_arm):
    t = ServiceTransport()
    t.node_name = "fake_arm_driver"
    arm = FakeArm(t, sim_arm)
    assert t.qos["/robot_description"] == LATCHED_QOS
    model = parse_urdf(t.messages("/robot_description")[0].data)
    assert default_tip(model, sim_arm.joint_names) == "tool" and model.root == sim_arm.base_frame
    arm.camera_step()
    frames = [decode_image(t.messages(cam.topic)[-1]) for cam in sim_arm.cameras]
    assert [f.shape for f in frames] == [(128, 128, 3), (128, 128, 3)]
    t.inject("~/cameras_enabled", t.new_message("std_msgs/msg/Bool", data=False))
    arm.camera_step()
    assert len(t.messages(sim_arm.cameras[0].topic)) == 1
    import dataclasses

    compressed = dataclasses.replace(sim_arm, cameras=tuple(dataclasses.replace(c, compressed=True)
                                                            for c in sim_arm.cameras))
    t2 = ServiceTransport()
    FakeArm(t2, compressed).camera_step()
    assert decode_compressed_image(t2.messages(sim_arm.cameras[0].topic)[0]).shape == (128, 128, 3)


def ur5e_arm(repo_root, interface: str) -> tuple[ServiceTransport, FakeArm, object]:
    """The UR5e (MoveIt Servo twists) on the fake arm, with `interface` as its controller."""
    import dataclasses

    from vla_policy_node.msgs.commands import resolve_controller
    from vla_policy_node.spec import load_embodiment

    emb = load_embodiment(repo_root / "config" / "robots" / "ur5e.yaml")
    if interface == "servo_pose":  # an absolute end-effector pose policy on the same arm
        emb = dataclasses.replace(emb, action_space=dataclasses.replace(emb.action_space, type="ee_pose"))
    emb = resolve_controller(emb, interface)
    t = ServiceTransport(clock=10.0)
    return t, FakeArm(t, emb), emb


def tool_pose(arm: FakeArm) -> np.ndarray:
    assert arm.servo is not None
    return arm.servo.pose(arm.positions[: arm._n])


def step(t: ServiceTransport, arm: FakeArm, seconds: float, period: float = 0.01) -> None:
    for _ in range(round(seconds / period)):
        t.advance(period)
        arm.joint_step()


def test_fake_servo_twist_moves_the_tool_at_the_commanded_twist_and_stops_on_timeout(repo_root):
    from vla_policy_node.msgs import encode_twist_stamped

    t, arm, emb = ur5e_arm(repo_root, "servo_twist")
    model = parse_urdf(t.messages("/robot_description")[0].data)
    assert emb.action_space.ee_link in model.links  # the policy's ee_link is in the chain it publishes
    arm.joint_step()
    start = tool_pose(arm)
    for _ in range(20):  # 0.2 s of +x at 0.1 m/s, streamed at 100 Hz like the mux does
        t.inject(emb.controller.topic, encode_twist_stamped(t.new_message, [0.1, 0.0, 0.0], [0.0, 0.0, 0.0],
                                                            stamp=t.clock, frame_id="base_link"))
        step(t, arm, 0.01)
    moved = tool_pose(arm)[:3, 3] - start[:3, 3]
    assert moved[0] == pytest.approx(0.02, abs=2e-3) and np.linalg.norm(moved[1:]) < 2e-3
    velocities = decode_joint_state(t.messages("/joint_states")[-1]).velocities[:6]
    limits = np.array([j.max_velocity for j in emb.joints])
    assert np.all(np.abs(velocities) <= limits + 1e-9)
    step(t, arm, 0.15)  # no new twist: the last one runs until Servo's timeout (0.1 s), then the arm stops
    stopped = arm.positions.copy()
    step(t, arm, 0.3)
    np.testing.assert_array_equal(arm.positions[:6], stopped[:6])


def test_fake_servo_pose_reaches_the_target_within_the_speed_limit(repo_root):
    from vla_policy_node.kinematics.rotation import quat_from_rpy, rpy_from_matrix
    from vla_policy_node.msgs import encode_pose_stamped

    t, arm, emb = ur5e_arm(repo_root, "servo_pose")
    arm.joint_step()
    start = tool_pose(arm)
    goal = start[:3, 3] + np.array([0.0, 0.05, -0.03])
    roll, pitch, yaw = rpy_from_matrix(start[:3, :3])
    w, x, y, z = quat_from_rpy(roll, pitch, yaw + 0.2)
    path = []
    for _ in range(300):
        t.inject(emb.controller.topic, encode_pose_stamped(t.new_message, goal, (x, y, z, w), stamp=t.clock,
                                                           frame_id="base_link"))
        step(t, arm, 0.01)
        path.append(tool_pose(arm)[:3, 3])
    end = tool_pose(arm)
    np.testing.assert_allclose(end[:3, 3], goal, atol=2e-3)
    assert rpy_from_matrix(end[:3, :3])[2] == pytest.approx(yaw + 0.2, abs=5e-3)
    speeds = np.linalg.norm(np.diff(np.array(path), axis=0), axis=1) / 0.01
    assert speeds.max() <= emb.action_space.max_linear_speed * 1.05  # the DLS step is linearised


def test_policy_node_arguments():
    args = policy_node.parse_args(["--robot-config", "r.yaml", "--checkpoint", "c", "--no-dry-run"])
    assert (args.robot_config, args.checkpoint, args.dry_run, args.transport) == ("r.yaml", "c", False, "auto")
    assert policy_node.parse_args([]).dry_run is True
    mux = command_mux_node.parse_args(["--robot-config", "r.yaml"])
    assert mux.mux_config.endswith("config/mux.yaml") and mux.node_name == "vla_command_mux"


@pytest.mark.parametrize("module", ["policy_node", "command_mux_node"])
def test_nodes_exit_with_a_message_when_required_settings_are_missing(module, tmp_path):
    env = {"VLA_DDS_LOOPBACK": "1", "ROS_DOMAIN_ID": "229", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", f"vla_policy_node.nodes.{module}", "--transport", "dds",
                           "--ros-args", "-p", "x:=1"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2, done.stderr
    assert "robot_config" in done.stderr and "required" in done.stderr


def test_fake_arm_sensor_faults_lie_the_way_sensors_do(sim_arm):
    from vla_policy_node.nodes.fake_arm_driver import SensorFault

    t = ServiceTransport(clock=10.0)
    t.node_name = "fake_arm_driver"
    arm = FakeArm(t, sim_arm, FakeArmParams(initial=(0.0,) * 7))
    fault = '{"readings": {"joint2": NaN, "joint3": 1e9}, "offsets": {"gripper": 0.076}, "joint_stamp_offset": 3600}'
    t.inject("~/sensor_fault", t.new_message("std_msgs/msg/String", data=fault))
    arm.joint_step()
    msg = t.messages("/joint_states")[-1]  # raw: the decoder would refuse the NaN, as the nodes do
    positions = np.asarray(msg.position)
    assert math.isnan(positions[1]) and positions[2] == 1e9
    assert positions[6] == pytest.approx(0.076) and positions[0] == 0.0
    assert msg.header.stamp.sec == 10 + 3600
    assert arm.positions[1] == 0.0  # the arm itself is where it was: only its sensor lies
    t.inject("~/sensor_fault", t.new_message("std_msgs/msg/String", data='{"joint_states": false, "cameras": false}'))
    sent = len(t.messages("/joint_states"))
    arm.joint_step()
    arm.camera_step()
    assert len(t.messages("/joint_states")) == sent and not t.messages(sim_arm.cameras[0].topic)
    t.inject("~/sensor_fault", t.new_message("std_msgs/msg/String", data='{"offsets": {"elbow": 1}}'))
    assert arm.errors.total == 1 and not arm.fault.joint_states  # a bad fault is refused, the old one stays
    with pytest.raises(ValueError, match="unknown sensor fault key"):
        SensorFault.from_json('{"joint_state": false}', sim_arm.state_names)


def test_fake_arm_refuses_a_bad_sensor_fault_argument(repo_root):
    from vla_policy_node.nodes import fake_arm_driver

    robot = str(repo_root / "config" / "robots" / "sim_arm.yaml")
    assert fake_arm_driver.main(["--transport", "dds", "--robot-config", robot, "--sensor-fault", "{oops"]) == 2
