"""Evaluate a checkpoint closed loop on the simulated arm (policy node + mux runtimes, simulated clock).

    python -m vla_policy_node.experiments.sim_arm.evaluate --robot-config config/robots/sim_arm.yaml --checkpoint DIR \
        --episodes 20 [--task pick_place] [--random-init] [--json report.json]

Layouts are task seeds 0..N-1, never used for demonstrations (those start at TRAIN_SEEDS_FROM).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from vla_policy_node.experiments.sim_arm.closed_loop import (
    STRATEGIES,
    ClosedLoopSystem,
    EpisodeResult,
    EvaluationReport,
    evaluate,
)
from vla_policy_node.experiments.sim_arm.demos import TRAIN_SEEDS_FROM
from vla_policy_node.model.vla_policy import VLAPolicy
from vla_policy_node.sim.pick_place import TASK_KINDS
from vla_policy_node.spec.cli import CliParser, run_guarded, wants_debug
from vla_policy_node.spec.deployment import STRATEGIES as STRATEGIES_ALL
from vla_policy_node.spec.deployment import read_deployment
from vla_policy_node.spec.embodiment import Embodiment, load_embodiment
from vla_policy_node.spec.repo_files import SIM_ARM_CONFIG


def load_policy(checkpoint: str | Path, robot: Embodiment, *, random_init: bool = False, seed: int = 0) -> VLAPolicy:
    """The checkpoint's policy; random_init: the same architecture with freshly initialized weights."""
    policy = VLAPolicy.from_checkpoint(str(checkpoint), robot, device="cpu", seed=seed)
    if random_init:
        torch.manual_seed(seed)
        for module in policy.model.modules():
            if hasattr(module, "reset_parameters") and module is not policy.model:
                module.reset_parameters()
    return policy


def evaluate_checkpoint(robot: Embodiment, checkpoint: str | Path, seeds: Sequence[int], *,
                        random_init: bool = False, record_first: bool = False, task: str = "reach",
                        progress: Callable[[EpisodeResult], None] | None = None,
                        strategy: str | None = None) -> EvaluationReport:
    """strategy: the policy node's chunk execution strategy (default: the checkpoint's deployment.json
    recommendation, else the task's, closed_loop.STRATEGIES)."""
    strategy = strategy or read_deployment(checkpoint).strategy
    system = ClosedLoopSystem(robot, load_policy(checkpoint, robot, random_init=random_init), task=task,
                              strategy=strategy)
    try:
        return evaluate(system, seeds, record_first=record_first, progress=progress)
    finally:
        system.close()


def _main(argv: Sequence[str] | None) -> int:
    logging.basicConfig(level=logging.WARNING)
    parser = CliParser(prog="vla_sim_evaluate", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.HelpFormatter)
    parser.add_argument("--robot-config", dest="robot_config", default=str(SIM_ARM_CONFIG))
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--first-seed", dest="first_seed", type=int, default=0,
                        help="first layout (task seed); demonstrations use seeds from TRAIN_SEEDS_FROM on")
    parser.add_argument("--task", choices=sorted(TASK_KINDS), default="reach")
    parser.add_argument("--strategy", choices=STRATEGIES_ALL, default=None,
                        help="the policy node's chunk execution strategy (default: the checkpoint's "
                             "deployment.json, else the task's: "
                             + ", ".join(f"{k} {v}" for k, v in STRATEGIES.items()) + ")")
    parser.add_argument("--verbose", action="store_true", help="one line per episode")
    parser.add_argument("--random-init", dest="random_init", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default="")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    robot = load_embodiment(args.robot_config)
    seeds = range(args.first_seed, args.first_seed + args.episodes)
    if args.first_seed + args.episodes > TRAIN_SEEDS_FROM:
        parser.error(f"evaluation layouts must stay below {TRAIN_SEEDS_FROM} (the demonstrations' seeds)")

    def line(e: EpisodeResult) -> None:
        print(f"seed {e.seed}: {'success' if e.success else 'failure'} after {e.time:.1f} s, distance "
              f"{e.final_distance:.3f} m ({e.instruction})", flush=True)

    report = evaluate_checkpoint(robot, args.checkpoint, seeds, random_init=args.random_init, task=args.task,
                                 progress=line if args.verbose else None, strategy=args.strategy)
    summary = report.summary()
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({**summary, "episodes_detail": [
            {"seed": e.seed, "instruction": e.instruction, "success": e.success, "time": e.time,
             "final_distance": e.final_distance} for e in report.episodes]}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Bad input or a failure is one line on stderr and exit code 2 (`--debug`: the traceback too)."""
    return run_guarded("vla_sim_evaluate", lambda: _main(argv), wants_debug(argv))


if __name__ == "__main__":
    sys.exit(main())
