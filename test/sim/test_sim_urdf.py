"""The sim arm's URDF (sim/urdf.py) as the driver publishes it: its FK is MuJoCo's, its joints are the robot
config's, it arrives latched, and in the closed loop the policy node draws its predicted path from it."""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytest.importorskip("mujoco")

import mujoco

from test.sim.test_closed_loop_takeover import TARGET_STATE, make_system
from test.system.processes import SIM_ARM
from vla_policy_node.kinematics.urdf import UrdfModel, default_tip, parse_urdf
from vla_policy_node.msgs.chunks import decode_action_chunk
from vla_policy_node.msgs.markers import decode_marker_points
from vla_policy_node.nodes.node_support import STRING
from vla_policy_node.nodes.robot_model import RobotModel
from vla_policy_node.nodes.sim_arm_driver import DESCRIPTION_TOPIC, SimArmDriver, SimArmParams
from vla_policy_node.sim.arm import ArmSim
from vla_policy_node.sim.description import TargetJoint, sim_arm_urdf
from vla_policy_node.sim.ik import ToolIK
from vla_policy_node.sim.scene import ARM_JOINTS, TOOL_SITE
from vla_policy_node.spec.embodiment import Embodiment, load_embodiment
from vla_policy_node.transport.inprocess import InProcessBus
from vla_policy_node.transport.qos import DEFAULT_QOS, LATCHED_QOS


def published_description(robot: Embodiment) -> tuple[str, ArmSim, InProcessBus]:
    """What a node that starts after the driver receives on /robot_description; the driver's sim and bus."""
    bus = InProcessBus(clock=1.0)
    driver = SimArmDriver(bus.transport("sim_arm_driver"), robot, SimArmParams(seed=3))
    received: list[str] = []
    bus.transport("late").subscribe(DESCRIPTION_TOPIC, STRING, lambda msg: received.append(str(msg.data)),
                                    LATCHED_QOS)
    assert len(received) == 1
    return received[0], driver.sim, bus


def link_pose(model: UrdfModel, link: str, positions: dict[str, float]) -> np.ndarray:
    """4x4 pose of `link` in the root frame, every joint (mimics included) at `positions`."""
    pose = np.eye(4)
    for joint in model.path(model.root, link):
        pose = pose @ joint.transform(model.joint_value(joint, positions))
    return pose


def test_fk_of_the_published_urdf_is_mujocos_tool_site() -> None:
    robot = load_embodiment(SIM_ARM)
    text, sim, _ = published_description(robot)
    model = parse_urdf(text)
    assert model.root == robot.base_frame == "world"
    assert default_tip(model, robot.joint_names) == "tool"
    chain = model.chain(robot.base_frame, "tool")
    assert chain.joint_names == ARM_JOINTS
    m, d = sim.model, sim.data
    qpos = [m.jnt_qposadr[m.joint(j).id] for j in ARM_JOINTS]
    rng = np.random.default_rng(0)
    configs = rng.uniform(sim.arm_lower, sim.arm_upper, size=(20, 6))
    urdf_poses = chain.poses(configs)
    for q, pose in zip(configs, urdf_poses, strict=True):
        d.qpos[qpos] = q
        mujoco.mj_kinematics(m, d)
        assert np.linalg.norm(pose[:3, 3] - sim.tool_position()) < 1e-3
        np.testing.assert_allclose(pose[:3, :3], d.site(TOOL_SITE).xmat.reshape(3, 3), atol=1e-6)
    # the configs really move the tool around (a constant FK would pass the loop above only by accident)
    assert np.ptp(urdf_poses[:, :3, 3], axis=0).min() > 0.2


def test_fingers_and_visuals_sit_where_mujoco_puts_them() -> None:
    robot = load_embodiment(SIM_ARM)
    text, sim, _ = published_description(robot)
    model = parse_urdf(text)
    m, d = sim.model, sim.data
    rng = np.random.default_rng(1)
    fingers = [m.jnt_qposadr[m.joint(f).id] for f in ("finger_left", "finger_right")]
    for _ in range(5):
        q = rng.uniform(sim.arm_lower, sim.arm_upper)
        opening = float(rng.uniform(0.0, 0.04))
        d.qpos[[m.jnt_qposadr[m.joint(j).id] for j in ARM_JOINTS]] = q
        d.qpos[fingers] = opening  # the driver drives both fingers to the one gripper value it reports
        mujoco.mj_kinematics(m, d)
        positions = dict(zip(ARM_JOINTS, q, strict=True)) | {robot.gripper.name: opening}
        for finger in ("finger_left", "finger_right"):
            np.testing.assert_allclose(link_pose(model, finger, positions)[:3, 3], d.body(finger).xpos, atol=1e-9)
        geoms = set()
        for link in ET.fromstring(text).iter("link"):
            for visual in link.iter("visual"):
                found = re.search(r"_geom(\d+)$", visual.get("name", ""))
                if found is None:
                    continue  # a capsule's end spheres
                geom = int(found.group(1))
                geoms.add(geom)
                origin = visual.find("origin")
                assert origin is not None
                local = np.eye(4)
                local[:3, 3] = [float(v) for v in origin.get("xyz", "").split()]
                world = link_pose(model, link.get("name", ""), positions) @ local
                np.testing.assert_allclose(world[:3, 3], d.geom_xpos[geom], atol=1e-9)
    arm_bodies = {m.body(b).id for b in ("base", *(f"link{i}" for i in range(1, 7)), "finger_left", "finger_right")}
    assert geoms == {g for g in range(m.ngeom) if m.geom_bodyid[g] in arm_bodies}


def test_joints_and_limits_are_the_robot_configs() -> None:
    robot = load_embodiment(SIM_ARM)
    model = parse_urdf(published_description(robot)[0])
    inputs = {j.name: j for j in model.joints.values() if j.movable and j.mimic is None}
    assert set(inputs) == {*robot.joint_names, robot.gripper.name}
    for spec in robot.joints:
        joint = inputs[spec.name]
        assert joint.type == "revolute"
        assert (joint.lower, joint.upper) == (spec.lower, spec.upper)
    gripper = inputs[robot.gripper.name]
    assert (gripper.type, gripper.lower, gripper.upper) == ("prismatic", robot.gripper.lower, robot.gripper.upper)
    assert model.joints["finger_right"].mimic is not None and model.joints["finger_right"].mimic.joint == "gripper"


def test_target_state_variant_has_the_target_joints_and_the_node_side_model_accepts_it() -> None:
    robot = load_embodiment(TARGET_STATE)
    text, _, bus = published_description(robot)
    node_model = RobotModel(robot, bus.transport("vla_policy"))  # as the policy node's: from the latched topic
    assert node_model.ready and node_model.problem == "" and node_model.path_frame == "world"
    # the policy node's path FK on a state-shaped row (arm joints, target x|y|z): MuJoCo's tool, the target ignored
    q = np.array([0.3, 0.5, 0.9, -0.4, 0.6, 1.0])
    row = np.concatenate([q, [0.5, 0.1, 0.03]])
    with ArmSim({}) as fresh:
        tool, _ = ToolIK(fresh.model).forward(q)
    np.testing.assert_allclose(node_model.tool_positions(row[None])[0], tool, atol=1e-9)
    # the target link sits at the reported reach point
    model = parse_urdf(text)
    point = {"target_x": 0.5, "target_y": -0.2, "target_z": 0.03}
    np.testing.assert_allclose(link_pose(model, "target", point)[:3, 3], [0.5, -0.2, 0.03], atol=1e-12)
    limits = {j.name: (j.lower, j.upper) for j in robot.joints}
    for name in ("target_x", "target_y", "target_z"):
        assert (model.joints[name].lower, model.joints[name].upper) == limits[name]


def test_bad_targets_and_base_frames_are_refused() -> None:
    with ArmSim({}) as sim:
        with pytest.raises(ValueError, match="distinct axes"):
            sim_arm_urdf(sim.model, target=[TargetJoint("a", 0, 0.0, 1.0), TargetJoint("b", 0, 0.0, 1.0)])
        with pytest.raises(ValueError, match="own base body"):
            sim_arm_urdf(sim.model, base_frame="base")


def test_description_is_latched_once_and_can_be_switched_off() -> None:
    robot = load_embodiment(SIM_ARM)
    bus = InProcessBus(clock=1.0)
    driver = SimArmDriver(bus.transport("sim_arm_driver"), robot, SimArmParams(seed=3))
    for k in range(1, 11):
        bus.clock = 1.0 + 0.01 * k
        driver.step()
    late = bus.transport("late")
    latched: list[str] = []
    volatile: list[str] = []
    late.subscribe(DESCRIPTION_TOPIC, STRING, lambda msg: latched.append(str(msg.data)), LATCHED_QOS)
    late.subscribe(DESCRIPTION_TOPIC, STRING, lambda msg: volatile.append(str(msg.data)), DEFAULT_QOS)
    assert latched == [driver.robot_description()] and volatile == []
    assert bus.published[DESCRIPTION_TOPIC] == 1  # once, at start; not with every step
    driver.close()

    quiet_bus = InProcessBus(clock=1.0)
    quiet = SimArmDriver(quiet_bus.transport("sim_arm_driver"), robot, SimArmParams(publish_description=False))
    heard: list[str] = []
    quiet_bus.transport("late").subscribe(DESCRIPTION_TOPIC, STRING, lambda msg: heard.append(msg.data), LATCHED_QOS)
    assert heard == [] and quiet_bus.published[DESCRIPTION_TOPIC] == 0
    quiet.close()


def test_closed_loop_policy_node_draws_the_predicted_path_from_the_sim_description(
        caplog: pytest.LogCaptureFixture) -> None:
    system = make_system()
    rviz = system.bus.transport("rviz")
    chunks: list = []
    paths: list = []
    rviz.subscribe("/vla/action_chunk", "vla_msgs/msg/ActionChunk", chunks.append)
    rviz.subscribe("/vla/predicted_path", "visualization_msgs/msg/MarkerArray", paths.append)
    ik = ToolIK(system.driver.sim.model)
    with caplog.at_level(logging.INFO):
        for seed in (3, 5):  # the second episode restarts the policy node: it must get the description again
            system.begin_episode(seed)
            assert system.policy_node is not None and system.policy_node.robot.ready
            # the restarted nodes' predecessors took their latched gripper commands with them
            gripper_writers = system.bus.latched["/vla/policy_gripper_command"]
            assert [w.transport for w in gripper_writers] == [system.policy_node.transport]
            for _ in range(25):
                system.tick()
    system.close()
    assert "predicted path markers off" not in caplog.text
    assert len(paths) == len(chunks) >= 4
    for chunk_msg, path_msg in zip(chunks, paths, strict=True):
        chunk = decode_action_chunk(chunk_msg)
        arm = chunk.actions[:, [chunk.names.index(n) for n in ARM_JOINTS]]
        markers = decode_marker_points(path_msg)
        _, points = markers[("vla_path", 0)]
        assert all(m.header.frame_id == "world" for m in path_msg.markers)
        expected = np.array([ik.forward(q)[0] for q in arm])
        assert np.abs(points - expected).max() < 1e-3
