"""Scripted demonstrations of the simulated arm, recorded with the team's recorder and converted to a dataset.

    python -m vla_policy_node.experiments.sim_arm.demos --robot-config config/robots/sim_arm.yaml -o demos/ \
        --episodes 100 [--task pick_place] [--workers 2]

The expert (IK waypoints: `sim.expert` for reach, `sim.pick_place_expert` for pick-and-place) drives the arm
the way a teleoperator does through the mux: it streams one-point JointTrajectory messages at the control rate
on the arm controller's topic, and gripper positions (Float64MultiArray, on change) on the gripper's. The recorder
(`bagtools.record.Recorder`) subscribes to the robot's topics like `vla_record` and marks each episode
(START, then SUCCESS/FAILURE); `vla_bag_to_dataset`'s converter turns the bag into a LeRobot v3 dataset whose
actions are the recorded commands. Everything runs in one process on a simulated clock (InProcessBus), so 100
demonstrations take seconds, not minutes, and are the same on every machine.

The recorder also takes the driver's ground truth (`/sim_arm/target_point`, PointStamped, and
`/sim_arm/task_state`), and the dataset carries it as `observation.environment_state` (reach: the target point
[x, y, z]; pick_place: the task state, block and pad positions): supervision for auxiliary training losses only,
which the policy never receives.

`--recovery-starts F` (pick_place) starts a fraction F of the demonstrations off the expert's path, beside and
above the named block (`sim.pick_place_expert.RecoveryStarts`), so the data holds the corrections a policy needs
after its own small errors; the other demonstrations are the same as without it.

`--policy-starts CHECKPOINT` (pick_place) starts each demonstration where that policy's own descent to the block
got to (`policy_starts.PolicyStartFinder`: DAgger's states, the expert's labels); demonstrations without a clean
rollout start at home (or at a recovery start, when both are asked).

`--workers N` records N bags in parallel processes (consecutive seed ranges) and converts them, in seed order,
into one dataset: the same episodes as one worker, in about 1/N of the time on N free cores.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import multiprocessing
import shutil
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vla_policy_node.bagtools.dataset import ConversionConfig, ConversionSummary, convert_bags
from vla_policy_node.bagtools.episodes import EventKind
from vla_policy_node.bagtools.record import RecordConfig, Recorder
from vla_policy_node.msgs.geometry import POINT_STAMPED
from vla_policy_node.msgs.joints import FLOAT64_ARRAY, JOINT_TRAJECTORY, encode_float64_array, encode_joint_trajectory
from vla_policy_node.nodes.sim_arm_driver import TARGET_POINT_TOPIC, TASK_STATE_TOPIC, SimArmDriver, SimArmParams
from vla_policy_node.sim.expert import ReachExpert
from vla_policy_node.sim.pick_place import TASK_KINDS
from vla_policy_node.sim.pick_place_expert import PickPlaceExpert, RecoveryStarts
from vla_policy_node.spec.cli import CliParser, run_guarded, wants_debug
from vla_policy_node.spec.embodiment import Embodiment, load_embodiment
from vla_policy_node.spec.repo_files import SIM_ARM_CONFIG
from vla_policy_node.transport.inprocess import InProcessBus

if TYPE_CHECKING:
    from vla_policy_node.experiments.sim_arm.policy_starts import PolicyStarts

log = logging.getLogger(__name__)
TRAIN_SEEDS_FROM = 1_000_000  # demonstration layouts; evaluation layouts are drawn below this


@dataclass(frozen=True)
class DemoStats:
    episodes: int
    successes: int
    sim_seconds: float
    wall_seconds: float
    off_home: int = 0  # demonstrations that started away from home (recovery or policy starts)


# the dataset's observation.environment_state per task kind (reach keeps the PointStamped its checkpoint used)
ENV_STATE_TOPICS = {"reach": TARGET_POINT_TOPIC, "pick_place": TASK_STATE_TOPIC}


def record_demonstrations(robot: Embodiment, bag: str | Path, seeds: Sequence[int], *, storage: str = "mcap",
                          task: str = "reach", gap: float = 0.5,
                          recovery: RecoveryStarts | None = None,
                          policy_starts: PolicyStarts | None = None) -> DemoStats:
    """One expert episode per task seed, recorded to `bag` through the Recorder while driving the sim;
    `recovery` / `policy_starts` (pick_place): some episodes start off the expert's path."""
    if (recovery is not None or policy_starts is not None) and task != "pick_place":
        raise ValueError("recovery and policy starts are for the pick_place task")
    start_wall = time.perf_counter()
    bus = InProcessBus(clock=1.0)
    driver = SimArmDriver(bus.transport("sim_arm_driver"), robot, SimArmParams(seed=int(seeds[0]), task=task))
    recorder = Recorder(bus.transport("vla_record"), robot, bag, RecordConfig(
        storage=storage, extra_topics={TARGET_POINT_TOPIC: POINT_STAMPED, TASK_STATE_TOPIC: FLOAT64_ARRAY}))
    teleop = bus.transport("sim_expert")
    arm_pub = teleop.publisher(robot.controller.topic, JOINT_TRAJECTORY)
    gripper_pub = teleop.publisher(robot.gripper.topic, FLOAT64_ARRAY) if robot.gripper else None
    expert = (PickPlaceExpert(driver.sim, sampler=driver.sampler) if task == "pick_place"  # type: ignore[arg-type]
              else ReachExpert(driver.sim))
    finder = None
    if policy_starts is not None:
        from vla_policy_node.experiments.sim_arm.policy_starts import PolicyStartFinder

        finder = PolicyStartFinder(robot, policy_starts)
    period = 1.0 / robot.rates.control_hz
    successes = off_home = 0
    sim_seconds = 0.0
    try:
        for seed in seeds:
            bus.clock += gap
            start = None
            if recovery is not None:
                start = expert.recovery_start(driver.sampler.task(int(seed)), recovery)  # type: ignore[union-attr]
            if start is None and finder is not None:
                start = finder.start(int(seed))
            off_home += start is not None
            episode = driver.reset(int(seed), start)
            driver.step()
            recorder.mark(EventKind.START, episode.instruction)
            plan = expert.plan(episode, driver.sim.arm_positions())
            sent = plan.gripper_at(0.0)
            if gripper_pub is not None:
                gripper_pub.publish(encode_float64_array(teleop.new_message, [sent]))
            t0 = bus.clock
            while bus.clock - t0 < plan.duration + expert.config.settle:
                t = round((bus.clock - t0) / period + 1) * period
                bus.clock = t0 + t
                gripper = plan.gripper_at(t)
                if gripper_pub is not None and gripper != sent:  # on change, as the policy node's gripper output
                    gripper_pub.publish(encode_float64_array(teleop.new_message, [gripper]))
                    sent = gripper
                arm_pub.publish(expert_command(teleop, driver, plan.at(t), period))
                driver.step()
            sim_seconds += bus.clock - t0
            successes += driver.succeeded
            recorder.mark(EventKind.SUCCESS if driver.succeeded else EventKind.FAILURE)
    finally:
        recorder.close()
        driver.close()
        if finder is not None:
            finder.close()
    return DemoStats(len(seeds), successes, sim_seconds, time.perf_counter() - start_wall, off_home)


def expert_command(transport, driver: SimArmDriver, arm: np.ndarray, period: float):
    """A one-point trajectory (as the mux sends) for every joint of the robot config; "joints" that are state
    (the target variant) repeat their measured value, so the recorded command is a full action."""
    names, measured, _ = driver.joint_state()
    values = dict(zip(names, measured, strict=True))
    values.update(zip(driver.arm_names, arm, strict=True))
    joints = driver.embodiment.joint_names
    return encode_joint_trajectory(transport.new_message, joints, np.array([[values[n] for n in joints]]),
                                   np.array([period]))


def _record_part(robot: Embodiment, bag: Path, seeds: range, storage: str, task: str,
                 recovery: RecoveryStarts | None, policy_starts: PolicyStarts | None) -> DemoStats:
    logging.getLogger().setLevel(logging.WARNING)  # a worker process: its summary is the parent's to print
    if policy_starts is not None:
        import torch

        torch.set_num_threads(1)  # one rollout per worker process, as many workers as cores
    return record_demonstrations(robot, bag, seeds, storage=storage, task=task, recovery=recovery,
                                 policy_starts=policy_starts)


def record_parallel(robot: Embodiment, output: Path, seeds: range, *, workers: int = 1, storage: str = "mcap",
                    task: str = "reach", recovery: RecoveryStarts | None = None,
                    policy_starts: PolicyStarts | None = None) -> tuple[list[Path], DemoStats]:
    """Record `seeds` into output/bag (one worker) or output/bag_<i> (consecutive seed ranges, one process each);
    the bags in seed order and the summed statistics (wall time: the whole call's)."""
    start = time.perf_counter()
    for old in [output / "bag", *output.glob("bag_*")]:
        if old.exists():
            shutil.rmtree(old)
    workers = max(1, min(workers, len(seeds)))
    if workers == 1:
        stats = _record_part(robot, output / "bag", seeds, storage, task, recovery, policy_starts)
        return [output / "bag"], stats
    bounds = np.linspace(0, len(seeds), workers + 1).round().astype(int)
    parts = [seeds[a:b] for a, b in itertools.pairwise(bounds)]
    bags = [output / f"bag_{i}" for i in range(workers)]
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_record_part, [robot] * workers, bags, parts, [storage] * workers,
                                [task] * workers, [recovery] * workers, [policy_starts] * workers))
    return bags, DemoStats(sum(r.episodes for r in results), sum(r.successes for r in results),
                           sum(r.sim_seconds for r in results), time.perf_counter() - start,
                           sum(r.off_home for r in results))


def conversion_config(task: str) -> ConversionConfig:
    """How the demonstrations of `task` become a dataset: PNG frames (lossless: the shipped recipes' images),
    the task's ground truth as observation.environment_state, no validation split."""
    return ConversionConfig(val_fraction=0.0, environment_state_topic=ENV_STATE_TOPICS[task], image_format="png")


def _convert(bag: Path, robot: Embodiment, output: Path, task: str) -> int:
    logging.getLogger().setLevel(logging.WARNING)
    return convert_bags([bag], robot, output, conversion_config(task)).frames


def convert_parallel(bags: Sequence[Path], robot: Embodiment, output: Path, task: str) -> list[Path]:
    """Each bag to output/dataset_<i>, one process per bag."""
    datasets = [output / f"dataset_{i}" for i in range(len(bags))]
    if len(bags) == 1:
        _convert(bags[0], robot, datasets[0], task)
        return datasets
    with ProcessPoolExecutor(len(bags), mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_convert, bags, [robot] * len(bags), datasets, [task] * len(bags)))
    return datasets


def demonstration_dataset(robot: Embodiment, output: str | Path, episodes: int, *, first_seed: int = TRAIN_SEEDS_FROM,
                          storage: str = "mcap", task: str = "reach", workers: int = 1,
                          robots: Sequence[tuple[Embodiment, str]] = (),
                          recovery: RecoveryStarts | None = None,
                          policy_starts: PolicyStarts | None = None) -> tuple[DemoStats, ConversionSummary]:
    """Record `episodes` demonstrations of `task` to output/bag (output/bag_<i> with several workers) and convert
    them to the dataset output/dataset. `robots`: more (robot config, dataset folder name) conversions of the
    same bags, e.g. a variant with more state (a robot whose joint states are a superset records for both)."""
    if task not in TASK_KINDS:
        raise ValueError(f"unknown task kind {task!r}; choose from {sorted(TASK_KINDS)}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    bags, stats = record_parallel(robot, output, range(first_seed, first_seed + episodes), workers=workers,
                                  storage=storage, task=task, recovery=recovery, policy_starts=policy_starts)
    config = conversion_config(task)
    summary = convert_bags(bags, robot, output / "dataset", config)
    for other, name in robots:
        convert_bags(bags, other, output / name, config)
    return stats, summary


def _main(argv: Sequence[str] | None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(levelname)s: %(message)s")
    parser = CliParser(prog="vla_sim_demos", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.HelpFormatter)
    parser.add_argument("--robot-config", dest="robot_config", default=str(SIM_ARM_CONFIG))
    parser.add_argument("-o", "--output", required=True, help="folder for bag/ and dataset/")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--first-seed", dest="first_seed", type=int, default=TRAIN_SEEDS_FROM)
    parser.add_argument("--task", choices=sorted(TASK_KINDS), default="reach")
    parser.add_argument("--workers", type=int, default=1, help="parallel recording processes (default 1)")
    parser.add_argument("--recovery-starts", dest="recovery_starts", type=float, default=0.0, metavar="FRACTION",
                        help="pick_place: start this fraction of the demonstrations beside and above the named block "
                             "instead of at home (default 0)")
    parser.add_argument("--empty-starts", dest="empty_starts", type=float, default=0.0, metavar="FRACTION",
                        help="of the recovery starts: this fraction with the gripper closed on nothing at carrying "
                             "height anywhere over the table (a slipped block; the expert goes back for it)")
    parser.add_argument("--policy-starts", dest="policy_starts", metavar="CHECKPOINT",
                        help="pick_place: start each demonstration where this checkpoint's own descent to the block "
                             "got to (DAgger's states, the expert's labels)")
    parser.add_argument("--per-worker", dest="per_worker", action="store_true",
                        help="one dataset per worker (dataset_<i>, converted in parallel) instead of one dataset")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.episodes < 1 or args.workers < 1:
        parser.error("--episodes and --workers must be >= 1")
    if (args.recovery_starts or args.policy_starts) and args.task != "pick_place":
        parser.error("--recovery-starts and --policy-starts are for --task pick_place")
    try:  # RecoveryStarts checks the fractions
        recovery = RecoveryStarts(args.recovery_starts, empty_fraction=args.empty_starts)
    except ValueError as error:
        parser.error(str(error))
    recovery = recovery if args.recovery_starts else None
    if args.policy_starts and not Path(args.policy_starts).is_dir():
        parser.error(f"--policy-starts: no checkpoint folder {args.policy_starts}")
    policy_starts = None
    if args.policy_starts:
        from vla_policy_node.experiments.sim_arm.policy_starts import PolicyStarts

        policy_starts = PolicyStarts(args.policy_starts)
    if args.per_worker:
        robot = load_embodiment(args.robot_config)
        output = Path(args.output)
        output.mkdir(parents=True, exist_ok=True)
        bags, stats = record_parallel(robot, output, range(args.first_seed, args.first_seed + args.episodes),
                                      workers=args.workers, task=args.task, recovery=recovery,
                                      policy_starts=policy_starts)
        datasets = convert_parallel(bags, robot, output, args.task)
        print(f"{stats.successes}/{stats.episodes} expert successes ({stats.off_home} started away from home) in "
              f"{stats.wall_seconds:.0f} s; datasets "
              + " ".join(str(d) for d in datasets))
        return 0
    stats, summary = demonstration_dataset(load_embodiment(args.robot_config), args.output, args.episodes,
                                           first_seed=args.first_seed, task=args.task, workers=args.workers,
                                           recovery=recovery, policy_starts=policy_starts)
    print(f"{stats.successes}/{stats.episodes} expert successes, {stats.sim_seconds:.0f} s simulated in "
          f"{stats.wall_seconds:.1f} s; dataset {summary.output}: {summary.episodes} episodes, {summary.frames} frames")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Bad input or a failure is one line on stderr and exit code 2 (`--debug`: the traceback too)."""
    return run_guarded("vla_sim_demos", lambda: _main(argv), wants_debug(argv))


if __name__ == "__main__":
    sys.exit(main())
