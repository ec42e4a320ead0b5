"""The MuJoCo arm: deterministic, renders every camera at its size, and the driver follows its command topics."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("mujoco")

from test.sim.helpers import laid_out_reach_point
from test.system.processes import REPO, SIM_ARM
from vla_policy_node.msgs.geometry import decode_point_stamped
from vla_policy_node.msgs.images import decode_image
from vla_policy_node.msgs.joints import decode_joint_state, encode_float64_array, encode_joint_trajectory
from vla_policy_node.msgs.stamps import header_stamp
from vla_policy_node.nodes.sim_arm_driver import (
    RESET_TOPIC,
    TARGET_POINT_TOPIC,
    TASK_TOPIC,
    SimArmDriver,
    SimArmParams,
)
from vla_policy_node.sim.arm import ArmSim
from vla_policy_node.sim.scene import BLOCK_COLORS
from vla_policy_node.sim.tasks import HOME, TaskSampler
from vla_policy_node.spec.embodiment import load_embodiment
from vla_policy_node.transport.inprocess import InProcessBus


def rollout(seed: int) -> tuple[np.ndarray, np.ndarray]:
    task = TaskSampler().task(seed)
    with ArmSim({"scene": (64, 64), "wrist": (48, 32)}) as sim:
        sim.reset(task.layout, task.initial_arm)
        for k in range(30):
            sim.set_targets(HOME + 0.3 * np.sin(0.1 * k), 0.01)
            sim.advance(0.01)
        return sim.arm_positions(), np.concatenate([sim.render("scene").ravel(), sim.render("wrist").ravel()])


def test_same_seed_same_trajectory_and_images() -> None:
    q1, img1 = rollout(5)
    q2, img2 = rollout(5)
    np.testing.assert_array_equal(q1, q2)
    np.testing.assert_array_equal(img1, img2)
    _, img3 = rollout(6)
    assert not np.array_equal(img1, img3)  # another layout looks different


def test_render_shapes_and_visible_blocks() -> None:
    task = TaskSampler().task(0)
    with ArmSim({"scene": (64, 64), "wrist": (48, 32)}) as sim:
        sim.reset(task.layout, task.initial_arm)
        scene, wrist = sim.render("scene"), sim.render("wrist")
        assert scene.shape == (64, 64, 3) and scene.dtype == np.uint8
        assert wrist.shape == (48, 32, 3)
        for color in BLOCK_COLORS:  # every block is on the table and inside the scene camera's image
            u, v = sim.project("scene", sim.block_position(color))
            assert 2 <= u < 62 and 2 <= v < 62, (color, u, v)
            rgb = scene[int(v), int(u)].astype(int)
            assert int(np.argmax(rgb)) == int(np.argmax(BLOCK_COLORS[color])) or color == "yellow", (color, rgb)


class Collector:
    def __init__(self) -> None:
        self.messages: dict[str, list] = {}

    def sink(self, topic: str):
        return lambda msg: self.messages.setdefault(topic, []).append(msg)


def test_driver_publishes_and_follows_trajectory_and_gripper_commands() -> None:
    robot = load_embodiment(SIM_ARM)
    bus = InProcessBus(clock=1.0)
    driver = SimArmDriver(bus.transport("sim_arm_driver"), robot, SimArmParams(seed=3))
    peer = bus.transport("test")
    seen = Collector()
    for topic, msgtype in [(robot.joint_states.topic, "sensor_msgs/msg/JointState"),
                           (robot.cameras[0].topic, "sensor_msgs/msg/Image"),
                           (robot.cameras[1].topic, "sensor_msgs/msg/Image"),
                           (TASK_TOPIC, "std_msgs/msg/String")]:
        peer.subscribe(topic, msgtype, seen.sink(topic))
    arm_pub = peer.publisher(robot.controller.topic, "trajectory_msgs/msg/JointTrajectory")
    gripper_pub = peer.publisher(robot.gripper.topic, "std_msgs/msg/Float64MultiArray")
    goal = HOME + np.array([0.3, 0.2, -0.2, 0.1, -0.1, 0.2])
    arm_pub.publish(encode_joint_trajectory(peer.new_message, robot.joint_names, goal[None], np.array([1.0])))
    gripper_pub.publish(encode_float64_array(peer.new_message, [0.01]))
    for k in range(1, 201):  # 2 s at 100 Hz
        bus.clock = 1.0 + 0.01 * k
        driver.step()
    states = [decode_joint_state(m) for m in seen.messages[robot.joint_states.topic]]
    assert len(states) == 200 and states[0].names == robot.state_names
    np.testing.assert_allclose(states[-1].positions[:6], goal, atol=0.02)
    assert abs(states[-1].positions[6] - 0.01) < 0.003
    halfway = states[49].positions[:6]  # linear interpolation over 1 s: half-way after 0.5 s (servo lag aside)
    assert np.all(np.abs(halfway - driver.task.initial_arm) < np.abs(goal - driver.task.initial_arm) * 0.75 + 0.02)
    frames = seen.messages[robot.cameras[0].topic]
    assert len(frames) == 20 and decode_image(frames[0]).shape == (128, 128, 3)  # 10 Hz
    status = json.loads(seen.messages[TASK_TOPIC][-1].data)
    assert status["seed"] == 3 and status["instruction"].startswith("reach the ")
    peer.publisher(RESET_TOPIC, "std_msgs/msg/UInt32").publish(peer.new_message("std_msgs/msg/UInt32", data=7))
    assert driver.task.seed == 7
    np.testing.assert_allclose(driver.sim.arm_positions(), driver.task.initial_arm, atol=1e-9)
    driver.close()


def test_driver_publishes_the_target_point_with_every_camera_frame() -> None:
    robot = load_embodiment(REPO / "config" / "sim" / "sim_arm_target_state.yaml")
    bus = InProcessBus(clock=1.0)
    driver = SimArmDriver(bus.transport("sim_arm_driver"), robot, SimArmParams(seed=3))
    peer = bus.transport("test")
    seen = Collector()
    for topic, msgtype in [(robot.joint_states.topic, "sensor_msgs/msg/JointState"),
                           (robot.cameras[0].topic, "sensor_msgs/msg/Image"),
                           (TARGET_POINT_TOPIC, "geometry_msgs/msg/PointStamped")]:
        peer.subscribe(topic, msgtype, seen.sink(topic))
    for k in range(1, 51):
        bus.clock = 1.0 + 0.01 * k
        driver.step()
    peer.publisher(RESET_TOPIC, "std_msgs/msg/UInt32").publish(peer.new_message("std_msgs/msg/UInt32", data=8))
    for k in range(51, 101):
        bus.clock = 1.0 + 0.01 * k
        driver.step()
    points = [decode_point_stamped(m) for m in seen.messages[TARGET_POINT_TOPIC]]
    frames = seen.messages[robot.cameras[0].topic]
    assert len(points) == len(frames) == 10  # 10 Hz, one per camera frame
    assert [p.stamp for p in points] == [header_stamp(f) for f in frames]
    assert {p.frame_id for p in points} == {robot.base_frame} == {"world"}
    first, second = laid_out_reach_point(3), laid_out_reach_point(8)
    assert np.linalg.norm(first - second) > 0.05  # another task, another target
    for p in points[:5]:
        np.testing.assert_allclose(p.point, first, atol=1e-3)
    for p in points[5:]:
        np.testing.assert_allclose(p.point, second, atol=1e-3)
    # the same value the target-state variant reports as target_x|y|z at the same instant
    states = {round(s.stamp, 6): s for s in map(decode_joint_state, seen.messages[robot.joint_states.topic])}
    for p in points:
        np.testing.assert_array_equal(states[round(p.stamp, 6)].positions_for(("target_x", "target_y", "target_z")),
                                      p.point)
    driver.close()
