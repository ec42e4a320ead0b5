"""Reproduce a shipped sim checkpoint in one command, with the wall time of every phase and of the whole.

    python -m vla_policy_node.experiments.sim_arm.reproduce -o OUT [--recipe reach_ddp] [--workers 2] \
        [--threads 2] [--evaluate 100]

Phases: demonstrations recorded by `--workers` processes in parallel (each its own seed range and bag, the robot
with only the cameras the policy reads, so nothing else is rendered or stored), each bag converted to its own
dataset in parallel, training on all of them (experiments.sim_arm.train, through vla_train), then an optional
closed-loop evaluation on unseen layouts (not part of the reproduction time). `--recipe` names a sim training
recipe (`train.RECIPES`) and how many demonstrations it takes (`DEMOS`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from vla_policy_node.experiments.sim_arm.demos import TRAIN_SEEDS_FROM, convert_parallel, record_parallel
from vla_policy_node.experiments.sim_arm.train import RECIPES, policy_cameras
from vla_policy_node.spec.cli import CliParser, run_guarded, wants_debug
from vla_policy_node.spec.embodiment import load_embodiment
from vla_policy_node.spec.repo_files import SIM_ARM_CONFIG

# demonstrations per recipe, and the task they show
DEMOS: dict[str, tuple[int, str]] = {"reach": (1000, "reach"), "reach_fast": (800, "reach"),
                                     "reach_ddp": (1000, "reach"), "pick_place": (1000, "pick_place")}


def _main(argv: Sequence[str] | None) -> int:
    parser = CliParser(prog="vla_sim_reproduce", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.HelpFormatter)
    parser.add_argument("--recipe", choices=sorted(DEMOS), default="reach_ddp",
                        help="reach_ddp: the shipped reach recipe, trained in 2 processes")
    parser.add_argument("--robot-config", dest="robot_config", default=str(SIM_ARM_CONFIG))
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--workers", type=int, default=2, help="parallel demonstration/conversion processes")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for training (0: the recipe's)")
    parser.add_argument("--processes", type=int, default=0,
                        help="data-parallel training processes (0: the recipe's; reach_ddp: 2)")
    parser.add_argument("--episodes", type=int, default=0, help="demonstrations (0: the recipe's)")
    parser.add_argument("--steps", type=int, default=0, help="training steps (0: the recipe's)")
    parser.add_argument("--evaluate", type=int, default=0, help="then evaluate on this many unseen layouts")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.workers < 1 or min(args.threads, args.processes, args.episodes, args.steps, args.evaluate) < 0:
        parser.error("--workers must be >= 1; --threads, --processes, --episodes, --steps and --evaluate >= 0")
    from vla_policy_node.experiments.sim_arm.train import train

    episodes, task = DEMOS[args.recipe]
    episodes = args.episodes or episodes
    config = RECIPES[args.recipe]
    if args.threads:
        config = dataclasses.replace(config, threads=args.threads)
    if args.processes:
        try:
            config = dataclasses.replace(config, processes=args.processes)
        except ValueError as error:
            parser.error(str(error))
    if args.steps:
        config = dataclasses.replace(config, steps=args.steps)
    robot = load_embodiment(args.robot_config)
    recorder_robot = policy_cameras(robot, config.cameras)  # render and store only what the policy reads
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    start = time.perf_counter()
    bags, stats = record_parallel(recorder_robot, output, range(TRAIN_SEEDS_FROM, TRAIN_SEEDS_FROM + episodes),
                                  workers=args.workers, task=task)
    times["demonstrations_s"] = time.perf_counter() - start
    print(f"{stats.successes}/{stats.episodes} expert successes in {times['demonstrations_s']:.0f} s", flush=True)
    mark = time.perf_counter()
    datasets = convert_parallel(bags, recorder_robot, output, task)
    times["conversion_s"] = time.perf_counter() - mark
    print(f"{len(datasets)} datasets in {times['conversion_s']:.0f} s", flush=True)
    mark = time.perf_counter()
    final, _, _ = train(robot, datasets, output / "run", config, progress=False, robot_config=args.robot_config)
    times["training_s"] = time.perf_counter() - mark
    times["reproduction_s"] = time.perf_counter() - start
    print(f"{config.steps} training steps in {times['training_s']:.0f} s ({config.processes} process(es)); "
          f"checkpoint {final}", flush=True)
    print(f"reproduced in {times['reproduction_s']:.0f} s wall ({times['reproduction_s'] / 60:.1f} min): "
          f"demonstrations {times['demonstrations_s']:.0f} s, conversion {times['conversion_s']:.0f} s, "
          f"training {times['training_s']:.0f} s", flush=True)
    summary: dict = {"recipe": args.recipe, "episodes": episodes, "workers": args.workers,
                     "threads": config.threads, "processes": config.processes,
                     **{k: round(v, 1) for k, v in times.items()}}
    if args.evaluate:
        import torch

        from vla_policy_node.experiments.sim_arm.evaluate import evaluate_checkpoint

        torch.set_num_threads(1)  # as `evaluate` runs it (--threads 1): with 2 on a busy 2-core machine it crawled
        report = evaluate_checkpoint(robot, final, range(args.evaluate), task=task)
        summary["evaluation"] = report.summary()
        print(f"closed loop: {report.success_rate:.0%} of {args.evaluate} unseen layouts", flush=True)
    (output / "reproduce.json").write_text(json.dumps(summary, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Bad input or a failure is one line on stderr and exit code 2 (`--debug`: the traceback too)."""
    return run_guarded("vla_sim_reproduce", lambda: _main(argv), wants_debug(argv))


if __name__ == "__main__":
    sys.exit(main())
