"""vla_train: train a VLA policy from one YAML recipe (train/recipe.py) with command-line overrides.

    vla_train config/train/franka_fr3.yaml datasets='[data/fr3]' output_dir=runs/fr3 train.steps=200
    torchrun --nproc_per_node 8 -m vla_policy_node.cli.vla_train config/train/franka_fr3.yaml train.distributed=fsdp

Writes checkpoints every train.save_every steps and `final/` at the end (what the policy node and
vla_replay_test load), metrics.jsonl (train loss, val loss, open-loop action error per joint) and loss.png;
running the same command again resumes exactly from the last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from vla_policy_node.spec.cli import CliParser, run_guarded

PROGRAM = "vla_train"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = CliParser(prog=PROGRAM, description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="recipe YAML (config/train/*.yaml); optional with overrides")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="recipe values, e.g. train.steps=100 model.mode=lora datasets='[d1, d2]'")
    parser.add_argument("--dry-run", dest="dry_run", action="store_true",
                        help="print the resolved recipe and stop (no torch)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    args = parser.parse_intermixed_args(list(argv))  # options may stand between the overrides
    if args.config and "=" in args.config:  # only overrides were given
        args.overrides.insert(0, args.config)
        args.config = None
    return args


def _run(args: argparse.Namespace) -> int:
    from vla_policy_node.spec.remap import remap_embodiment
    from vla_policy_node.spec.robot_configs import load_robot
    from vla_policy_node.train.recipe import load_recipe, recipe_dict

    recipe = load_recipe(args.config, args.overrides)
    robot = remap_embodiment(load_robot(recipe.robot), recipe.camera_topics)
    if args.dry_run:
        print(json.dumps(recipe_dict(recipe), indent=2))
        return 0
    from vla_policy_node.train.vla_train import run

    summary = run(recipe, robot, progress=args.progress)
    if os.environ.get("RANK", "0") != "0":
        return 0  # under a launcher rank 0 reports
    losses = summary["losses"]
    line = f"{PROGRAM}: {summary['steps']} steps"
    if losses:
        tail = losses[-min(50, len(losses)):]
        line += f", loss {losses[0]:.3f} -> {sum(tail) / len(tail):.3f}"
    if summary["validation"]:
        last = summary["validation"][-1]
        line += f", val loss {last['val_loss']:.3f}, val action MAE {last['val_action_mae']:.4f}"
    if summary["distributed"] != "none":
        line += f", {summary['distributed']} over {summary['world_size']} process(es)"
    print(f"{line} in {summary['seconds']:.0f} s; checkpoint {summary['final']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return run_guarded(PROGRAM, lambda: _run(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
