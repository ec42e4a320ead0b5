"""Closed loop through the policy node and the mux on the sim arm: a target-reading scripted policy reaches;
killing the policy mid-episode makes the arm hold; a teleop command takes over and the arm follows it."""

from __future__ import annotations

import numpy as np

from test.system.processes import REPO
from vla_policy_node.experiments.sim_arm.closed_loop import ClosedLoopSystem, evaluate
from vla_policy_node.msgs.joints import JOINT_STATE, encode_joint_state
from vla_policy_node.sim.ik import ToolIK
from vla_policy_node.sim.tasks import HOME
from vla_policy_node.spec.embodiment import load_embodiment
from vla_policy_node.spec.types import ActionChunk

TARGET_STATE = REPO / "config" / "sim" / "sim_arm_target_state.yaml"


class TargetReadingPolicy:
    """Plans to the target the state reports (IK), 16 actions at dt 0.1: a stand-in for a trained policy."""

    def __init__(self, robot, ik: ToolIK) -> None:
        self.robot, self.ik = robot, ik

    def infer(self, observation, *, prefix=None) -> ActionChunk:
        q, target = observation.state[:6], observation.state[6:9]
        goal, _ = self.ik.solve(target, q, HOME)
        steps = np.arange(1, 17)[:, None]
        arm = q + np.clip(steps / 16 * (goal - q), -0.15 * steps, 0.15 * steps)
        actions = np.concatenate([arm, np.repeat(observation.state[None, 6:], 16, 0)], 1)
        return ActionChunk(stamp=observation.stamp, dt=0.1, actions=actions, names=self.robot.action_names)


def make_system() -> ClosedLoopSystem:
    robot = load_embodiment(TARGET_STATE)
    system = ClosedLoopSystem(robot, None)
    system.policy = TargetReadingPolicy(robot, ToolIK(system.driver.sim.model))
    return system


def test_scripted_policy_reaches_through_policy_node_and_mux() -> None:
    system = make_system()
    report = evaluate(system, range(4))
    system.close()
    assert report.success_rate == 1.0
    assert all(e.latencies_ms for e in report.episodes)


def test_killed_policy_holds_and_teleop_takes_over() -> None:
    system = make_system()
    system.begin_episode(3)
    for _ in range(60):  # 0.6 s of policy control: the arm is moving
        system.tick()
    moving = system.driver.sim.arm_velocities()
    assert np.abs(moving).max() > 0.05
    system.kill_policy()
    for _ in range(150):  # past the mux's policy timeout (0.5 s): it holds where the arm is
        system.tick()
    held = system.driver.sim.arm_positions()
    for _ in range(100):
        system.tick()
    np.testing.assert_allclose(system.driver.sim.arm_positions(), held, atol=2e-3)
    assert system.mux_node is not None
    teleop = system.bus.transport("teleop")
    pub = teleop.publisher("/vla/teleop/joint_command", JOINT_STATE)
    goal = held + np.array([0.2, -0.1, 0.1, 0.0, 0.1, -0.2])
    names = system.robot.joint_names
    goal_all = np.concatenate([goal, system.driver.joint_state()[1][6:9]])
    for _ in range(300):  # teleop streams its goal for 3 s; the mux ramps over and the arm follows
        pub.publish(encode_joint_state(teleop.new_message, names, goal_all, stamp=system.bus.clock))
        system.tick()
    np.testing.assert_allclose(system.driver.sim.arm_positions(), goal, atol=0.02)
    system.close()


def test_the_policy_node_runs_the_tasks_chunk_strategy_unless_told_otherwise() -> None:
    """Pick-and-place runs with temporal ensembling (its shipped checkpoint's setting), reach with rtc; an explicit
    strategy wins. The setting reaches the node that runs the episode."""
    robot = load_embodiment(TARGET_STATE)
    for task, strategy, expected in (("pick_place", None, "ensemble"), ("reach", None, "rtc"),
                                     ("pick_place", "synchronous", "synchronous")):
        system = ClosedLoopSystem(robot, None, task=task, strategy=strategy)
        try:
            system.start_nodes("put the red block on the white pad")
            assert system.policy_node is not None
            assert system.policy_node.params.control_config().executor.strategy == expected
        finally:
            system.close()
