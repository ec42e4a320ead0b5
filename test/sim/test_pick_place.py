"""Pick-and-place on the simulated arm: layouts, the physical success test, the IK expert, the driver's gripper
path and task state, and demonstrations through the recorder and the converter."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("mujoco")

from test.system.processes import SIM_ARM
from vla_policy_node.experiments.sim_arm.demos import TRAIN_SEEDS_FROM, demonstration_dataset, record_demonstrations
from vla_policy_node.msgs.joints import decode_float64_array, encode_float64_array, encode_joint_trajectory
from vla_policy_node.nodes.sim_arm_driver import TASK_STATE_TOPIC, TASK_TOPIC, SimArmDriver, SimArmParams
from vla_policy_node.sim.arm import GRIPPER_WIDE, ArmSim, BlockPose, Layout
from vla_policy_node.sim.pick_place import PickPlaceSampler, make_task_kind, parse_pick_place
from vla_policy_node.sim.pick_place_expert import PickPlaceExpert, RecoveryStarts
from vla_policy_node.sim.scene import BLOCK_COLORS, PAD_COLORS
from vla_policy_node.sim.tasks import HOME, Task
from vla_policy_node.spec.embodiment import load_embodiment
from vla_policy_node.train.lerobot_dataset import LeRobotSamples
from vla_policy_node.transport.inprocess import InProcessBus

SAMPLER = PickPlaceSampler()


def test_layouts_are_reproducible_spread_out_and_name_present_objects() -> None:
    ws = SAMPLER.workspace
    colors = set()
    for seed in range(20):
        task = SAMPLER.task(seed)
        again = SAMPLER.task(seed)
        assert (again.layout, again.instruction) == (task.layout, task.instruction)
        np.testing.assert_array_equal(again.initial_arm, task.initial_arm)
        assert len(task.layout.blocks) == ws.blocks and set(task.layout.pads) == set(PAD_COLORS)
        assert task.target in task.layout.blocks and task.place_on in task.layout.pads
        assert parse_pick_place(task.instruction) == (task.target, task.place_on)
        assert task.initial_gripper == GRIPPER_WIDE
        blocks = np.array([[p.x, p.y] for p in task.layout.blocks.values()])
        pads = np.array([[p.x, p.y] for p in task.layout.pads.values()])
        every = np.vstack([blocks, pads])
        gaps = np.linalg.norm(every[:, None] - every[None], axis=-1) + np.eye(len(every))
        assert gaps[: len(blocks), : len(blocks)].min() >= ws.block_separation
        assert gaps[len(blocks):].min() >= ws.pad_separation
        assert np.hypot(every[:, 0], every[:, 1]).max() <= ws.max_radius
        colors.add((task.target, task.place_on))
    assert len(colors) >= 5  # the instructions vary over blocks and pads
    assert not set(BLOCK_COLORS) & set(PAD_COLORS)  # "the <color> block" and "the <color> pad" never collide


def _placed(sim: ArmSim, task: Task, where: np.ndarray, settle: float = 0.5) -> None:
    """Teleport the named block to `where` (its centre) and let physics settle it."""
    m, d = sim.model, sim.data
    adr = m.jnt_qposadr[m.joint(f"block_{task.target}_free").id]
    d.qpos[adr: adr + 3] = where
    d.qvel[m.jnt_dofadr[m.joint(f"block_{task.target}_free").id]:][:6] = 0.0
    sim.advance(settle)


def test_success_means_resting_on_the_named_pad_and_let_go() -> None:
    task = SAMPLER.task(3)
    other_pad = next(c for c in task.layout.pads if c != task.place_on)
    half = 0.03
    with ArmSim({}) as sim:
        sim.reset(task.layout, task.initial_arm, task.initial_gripper)
        sim.advance(0.2)
        assert not SAMPLER.success(sim, task)  # as laid out: the block is on the table
        pad = sim.pad_position(task.place_on)
        _placed(sim, task, pad + np.array([0.02, -0.02, half + 0.002]))
        assert SAMPLER.success(sim, task) and SAMPLER.distance(sim, task) < 0.04
        _placed(sim, task, pad + np.array([0.0, 0.0, half + 0.1]), settle=0.05)  # falling, above the pad
        assert not SAMPLER.success(sim, task)
        _placed(sim, task, sim.pad_position(other_pad) + np.array([0.0, 0.0, half + 0.002]))
        assert not SAMPLER.success(sim, task)  # the other pad
        block = sim.block_position(task.target)
        _placed(sim, task, np.array([block[0] + 0.4, block[1], half]))  # on the table, off any pad
        assert not SAMPLER.success(sim, task)


def test_success_needs_the_fingers_off_the_block() -> None:
    """The expert's plan stopped while the gripper still holds the block on the pad: not yet a success; after
    the plan (released, arm up) it is."""
    task = SAMPLER.task(TRAIN_SEEDS_FROM)
    with ArmSim({}) as sim:
        sim.reset(task.layout, task.initial_arm, task.initial_gripper)
        sim.advance(0.02)
        expert = PickPlaceExpert(sim, sampler=SAMPLER)
        plan = expert.plan(task, sim.arm_positions())
        released = np.nonzero(np.diff(plan.gripper) > 0)[0][-1] * plan.dt  # the last opening command
        t, holding_on_pad = 0.0, False
        while t < plan.duration + 0.3:
            t += 0.01
            sim.set_targets(plan.at(t), plan.gripper_at(t))
            sim.advance(0.01)
            if abs(t - (released - 0.05)) < 0.005:  # the block sits on the pad, still in the closed fingers
                holding_on_pad = sim.fingers_touch(task.target) and not SAMPLER.success(sim, task)
        assert holding_on_pad
        assert SAMPLER.success(sim, task)


@pytest.mark.slow
def test_expert_places_the_block_on_many_layouts() -> None:
    with ArmSim({}) as sim:
        expert = PickPlaceExpert(sim, sampler=SAMPLER)
        done = 0
        for seed in range(TRAIN_SEEDS_FROM, TRAIN_SEEDS_FROM + 20):
            task = SAMPLER.task(seed)
            sim.reset(task.layout, task.initial_arm, task.initial_gripper)
            sim.advance(0.02)
            plan = expert.plan(task, sim.arm_positions())
            for k in range(1, round((plan.duration + 0.3) / 0.01) + 1):
                sim.set_targets(plan.at(0.01 * k), plan.gripper_at(0.01 * k))
                sim.advance(0.01)
                if SAMPLER.success(sim, task):
                    done += 1
                    break
    assert done == 20


def test_driver_takes_gripper_commands_and_publishes_the_task_state() -> None:
    robot = load_embodiment(SIM_ARM)
    bus = InProcessBus(clock=1.0)
    driver = SimArmDriver(bus.transport("sim_arm_driver"), robot, SimArmParams(seed=5, task="pick_place"))
    peer = bus.transport("test")
    states, status = [], []
    peer.subscribe(TASK_STATE_TOPIC, "std_msgs/msg/Float64MultiArray", states.append)
    peer.subscribe(TASK_TOPIC, "std_msgs/msg/String", status.append)
    task = driver.task
    assert task is not None and task.instruction.startswith("put the ")
    assert abs(driver.sim.gripper_position() - GRIPPER_WIDE) < 1e-6  # a pick-and-place episode starts open
    gripper_pub = peer.publisher(robot.gripper.topic, "std_msgs/msg/Float64MultiArray")
    gripper_pub.publish(encode_float64_array(peer.new_message, [0.0]))
    arm_pub = peer.publisher(robot.controller.topic, "trajectory_msgs/msg/JointTrajectory")
    arm_pub.publish(encode_joint_trajectory(peer.new_message, robot.joint_names, HOME[None], np.array([0.5])))
    for k in range(1, 51):
        bus.clock = 1.0 + 0.01 * k
        driver.step()
    assert driver.sim.gripper_position() < 0.002  # closed on nothing
    assert len(states) == 5  # with every camera frame (10 Hz)
    values = decode_float64_array(states[-1])
    np.testing.assert_allclose(values[:3], driver.sim.block_position(task.target), atol=1e-6)
    np.testing.assert_allclose(values[3:], driver.sim.pad_position(task.place_on), atol=1e-6)
    report = json.loads(status[-1].data)
    assert report["instruction"] == task.instruction and report["success"] is False
    assert report["distance"] == pytest.approx(SAMPLER.distance(driver.sim, task), abs=1e-3)
    driver.close()


@pytest.mark.slow
def test_pick_place_demonstrations_close_and_open_the_gripper(tmp_path) -> None:
    robot = load_embodiment(SIM_ARM)
    stats, summary = demonstration_dataset(robot, tmp_path, 2, task="pick_place")
    assert stats.successes == stats.episodes == summary.episodes == 2
    samples = LeRobotSamples(tmp_path / "dataset", split=None, horizon=1, tag=robot.tag)
    assert len(samples.env_state_names) == 6
    gripper = np.array([samples[i].actions[0, -1] for i in range(len(samples))])
    assert gripper.max() == pytest.approx(GRIPPER_WIDE) and gripper.min() == pytest.approx(0.0)
    starts = np.nonzero(samples.frame_in_episode == 0)[0]
    for begin, end in zip(starts, [*starts[1:], len(samples)], strict=True):
        closed = np.nonzero(gripper[begin:end] < 0.01)[0]
        assert len(closed) > 10 and gripper[begin] > 0.05 and gripper[end - 1] > 0.05  # open, closed, open
        assert np.all(np.diff(closed) == 1)  # one grasp
        first = samples[int(begin)]
        task = PickPlaceSampler().task(TRAIN_SEEDS_FROM + int(np.searchsorted(starts, begin)))
        assert first.instruction == task.instruction
        block = task.layout.blocks[task.target]
        np.testing.assert_allclose(first.env_state[:2], [block.x, block.y], atol=2e-3)


def test_recovery_starts_put_the_tool_beside_and_above_the_block_and_the_expert_still_succeeds(tmp_path) -> None:
    """Recovery starts are a function of the seed, within the configured region, and the expert's plan from one
    still places the block (the recorded demonstration is a success, its first frame away from home)."""
    robot = load_embodiment(SIM_ARM)
    starts = RecoveryStarts(fraction=1.0, radius=0.05, height=(0.02, 0.08))
    with ArmSim({}) as sim:
        expert = PickPlaceExpert(sim, sampler=SAMPLER)
        drawn = lower = 0
        for seed in range(TRAIN_SEEDS_FROM, TRAIN_SEEDS_FROM + 30):
            task = SAMPLER.task(seed)
            start = expert.recovery_start(task, starts)
            assert expert.recovery_start(task, RecoveryStarts(fraction=0.0)) is None
            if start is None:
                continue
            drawn += 1
            q, opening = start
            assert opening == GRIPPER_WIDE
            np.testing.assert_array_equal(q, expert.recovery_start(task, starts)[0])
            tool, axis = expert.ik.forward(q)
            block = task.layout.blocks[task.target]
            assert np.hypot(tool[0] - block.x, tool[1] - block.y) <= 0.05 + 1e-3
            assert 0.02 - 1e-3 <= tool[2] - 2 * sim.config.block_half <= 0.08 + 1e-3
            assert axis[2] < -0.99  # pointing down, as the expert grasps
            sim.reset(task.layout, q, task.initial_gripper)
            first, gripper, _ = expert.keyframes(task, tool)[0]  # sideways at this height, then down
            np.testing.assert_allclose(first[:2], [block.x, block.y], atol=2e-3)
            approach = expert.config.grasp_height + expert.config.clearance
            assert first[2] == pytest.approx(tool[2] if tool[2] < approach - 0.01 else approach)
            assert gripper == GRIPPER_WIDE
            lower += tool[2] < approach - 0.01
            home_tool, _ = expert.ik.forward(task.initial_arm)
            home_first = expert.keyframes(task, home_tool)[0][0]  # from home: the approach height, as before
            assert home_first[2] == pytest.approx(approach)
        assert drawn >= 20 and lower >= 10
        half = RecoveryStarts(fraction=0.5)
        some = [expert.recovery_start(SAMPLER.task(s), half) is not None for s in range(200)]
        assert 60 <= sum(some) <= 140
        empty = RecoveryStarts(fraction=1.0, empty_fraction=1.0, carry_height=(0.05, 0.1))
        for seed in range(TRAIN_SEEDS_FROM, TRAIN_SEEDS_FROM + 10):  # a slipped block: closed, anywhere, carrying
            start = expert.recovery_start(SAMPLER.task(seed), empty)
            assert start is not None and start[1] == 0.0
            tool, _ = expert.ik.forward(start[0])
            ws = SAMPLER.workspace
            assert ws.x[0] - 0.06 <= tool[0] <= ws.x[1] + 0.06 and ws.y[0] - 0.06 <= tool[1] <= ws.y[1] + 0.06
            assert 0.05 - 1e-3 <= tool[2] - 2 * sim.config.block_half <= 0.1 + 1e-3
    for bad in ({"fraction": 1.5}, {"empty_fraction": -0.1}):
        with pytest.raises(ValueError, match="fraction"):
            RecoveryStarts(**bad)
    driver = SimArmDriver(InProcessBus(clock=1.0).transport("sim_arm_driver"), robot,
                          SimArmParams(seed=TRAIN_SEEDS_FROM, task="pick_place"))
    task = driver.reset(TRAIN_SEEDS_FROM + 1, (q, 0.0))
    driver.step()
    np.testing.assert_allclose(driver.sim.arm_positions(), q, atol=1e-3)
    assert driver.sim.gripper_position() < 0.01  # started closed
    np.testing.assert_array_equal(task.initial_arm, q)
    driver.close()
    bag = tmp_path / "bag"
    seeds = range(TRAIN_SEEDS_FROM, TRAIN_SEEDS_FROM + 2)
    stats = record_demonstrations(robot, bag, seeds, task="pick_place", recovery=starts)
    assert stats.successes == stats.episodes == 2
    stats = record_demonstrations(robot, tmp_path / "bag_empty", seeds, task="pick_place", recovery=empty)
    assert stats.successes == stats.episodes == 2  # the expert went back for the block
    with pytest.raises(ValueError, match="pick_place"):
        record_demonstrations(robot, tmp_path / "bag2", range(1), task="reach", recovery=starts)


def test_unknown_task_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown task kind"):
        make_task_kind("stack")
    assert make_task_kind("pick_place").kind == "pick_place" and make_task_kind("reach").kind == "reach"
    _ = Layout(blocks={"red": BlockPose(0.4, 0.0)})
