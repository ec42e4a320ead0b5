"""Scripted demonstrations of the simulated arm, recorded with the team's recorder and converted to a dataset.

    python -m vla_policy_node.experiments.sim_arm.demos --robot-config config/robots/sim_arm.yaml -o demos/ \
        --episodes 100

The expert (IK waypoints, `sim.expert`) drives the arm the way a teleoperator does through the mux: it streams
one-point JointTrajectory messages at the control rate on the arm controller's topic. The recorder
(`bagtools.record.Recorder`) subscribes to the robot's topics like `vla_record` and marks each episode
(START, then SUCCESS/FAILURE); `vla_bag_to_dataset`'s converter turns the bag into a LeRobot v3 dataset whose
actions are the recorded commands. Everything runs in one process on a simulated clock (InProcessBus), so 100
demonstrations take seconds, not minutes, and are the same on every machine.

The recorder also takes the driver's ground-truth target (`/sim_arm/target_point`, PointStamped), and the
dataset carries it as `observation.environment_state` [x, y, z]: supervision for auxiliary training losses only,
which the policy never receives.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla_policy_node.bagtools.dataset import ConversionConfig, ConversionSummary, convert_bags
from vla_policy_node.bagtools.episodes import EventKind
from vla_policy_node.bagtools.record import RecordConfig, Recorder
from vla_policy_node.msgs.geometry import POINT_STAMPED
from vla_policy_node.msgs.joints import JOINT_TRAJECTORY, encode_float64_array, encode_joint_trajectory
from vla_policy_node.nodes.sim_arm_driver import TARGET_POINT_TOPIC, SimArmDriver, SimArmParams
from vla_policy_node.sim.arm import GRIPPER_OPEN
from vla_policy_node.sim.expert import ExpertConfig, ReachExpert
from vla_policy_node.spec.embodiment import Embodiment, load_embodiment
from vla_policy_node.transport.inprocess import InProcessBus

log = logging.getLogger(__name__)
TRAIN_SEEDS_FROM = 1_000_000  # demonstration layouts; evaluation layouts are drawn below this


@dataclass(frozen=True)
class DemoStats:
    episodes: int
    successes: int
    sim_seconds: float
    wall_seconds: float


def record_demonstrations(robot: Embodiment, bag: str | Path, seeds: Sequence[int], *, storage: str = "mcap",
                          expert_config: ExpertConfig | None = None, gap: float = 0.5) -> DemoStats:
    """One expert episode per task seed, recorded to `bag` through the Recorder while driving the sim."""
    start_wall = time.perf_counter()
    bus = InProcessBus(clock=1.0)
    driver = SimArmDriver(bus.transport("sim_arm_driver"), robot, SimArmParams(seed=int(seeds[0])))
    recorder = Recorder(bus.transport("vla_record"), robot, bag,
                        RecordConfig(storage=storage, extra_topics={TARGET_POINT_TOPIC: POINT_STAMPED}))
    teleop = bus.transport("sim_expert")
    arm_pub = teleop.publisher(robot.controller.topic, JOINT_TRAJECTORY)
    gripper_pub = teleop.publisher(robot.gripper.topic, "std_msgs/msg/Float64MultiArray") if robot.gripper else None
    expert = ReachExpert(driver.sim, expert_config)
    period = 1.0 / robot.rates.control_hz
    successes = 0
    sim_seconds = 0.0
    try:
        for seed in seeds:
            bus.clock += gap
            task = driver.reset(int(seed))
            driver.step()
            recorder.mark(EventKind.START, task.instruction)
            plan = expert.plan(task, driver.sim.arm_positions())
            if gripper_pub is not None:
                gripper_pub.publish(encode_float64_array(teleop.new_message, [GRIPPER_OPEN]))
            t0 = bus.clock
            while bus.clock - t0 < plan.duration + expert.config.settle:
                bus.clock = t0 + round((bus.clock - t0) / period + 1) * period
                arm_pub.publish(expert_command(teleop, driver, plan.at(bus.clock - t0), period))
                driver.step()
            sim_seconds += bus.clock - t0
            successes += driver.succeeded
            recorder.mark(EventKind.SUCCESS if driver.succeeded else EventKind.FAILURE)
    finally:
        recorder.close()
        driver.close()
    return DemoStats(len(seeds), successes, sim_seconds, time.perf_counter() - start_wall)


def expert_command(transport, driver: SimArmDriver, arm: np.ndarray, period: float):
    """A one-point trajectory (as the mux sends) for every joint of the robot config; "joints" that are state
    (the target variant) repeat their measured value, so the recorded command is a full action."""
    names, measured, _ = driver.joint_state()
    values = dict(zip(names, measured, strict=True))
    values.update(zip(driver.arm_names, arm, strict=True))
    joints = driver.embodiment.joint_names
    return encode_joint_trajectory(transport.new_message, joints, np.array([[values[n] for n in joints]]),
                                   np.array([period]))


def demonstration_dataset(robot: Embodiment, output: str | Path, episodes: int, *, first_seed: int = TRAIN_SEEDS_FROM,
                          storage: str = "mcap") -> tuple[DemoStats, ConversionSummary]:
    """Record `episodes` demonstrations to output/bag and convert them to the dataset output/dataset."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    bag = output / "bag"
    if bag.exists():
        import shutil

        shutil.rmtree(bag)
    stats = record_demonstrations(robot, bag, range(first_seed, first_seed + episodes), storage=storage)
    summary = convert_bags([bag], robot, output / "dataset",
                           ConversionConfig(val_fraction=0.0, environment_state_topic=TARGET_POINT_TOPIC,
                                            image_format="png"))  # lossless: the shipped recipe's images
    return stats, summary


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(levelname)s: %(message)s")
    parser = argparse.ArgumentParser(prog="vla_sim_demos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--robot-config", dest="robot_config", default="config/robots/sim_arm.yaml")
    parser.add_argument("-o", "--output", required=True, help="folder for bag/ and dataset/")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--first-seed", dest="first_seed", type=int, default=TRAIN_SEEDS_FROM)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    stats, summary = demonstration_dataset(load_embodiment(args.robot_config), args.output, args.episodes,
                                           first_seed=args.first_seed)
    print(f"{stats.successes}/{stats.episodes} expert successes, {stats.sim_seconds:.0f} s simulated in "
          f"{stats.wall_seconds:.1f} s; dataset {summary.output}: {summary.episodes} episodes, {summary.frames} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
