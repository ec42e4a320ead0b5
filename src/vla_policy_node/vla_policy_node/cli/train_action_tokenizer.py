"""vla_train_action_tokenizer: train and save an action tokenizer (uniform | vq | rvq | fast) from a dataset.

    vla_train_action_tokenizer DATASET_DIR OUT_DIR --kind rvq --horizon 16 [--codebook-size 512 --depth 2]

DATASET_DIR is a LeRobot v3 dataset (the bag-to-dataset tool's output; train/lerobot_dataset.py reads it).
Prints the reconstruction error per action dimension and the tokens per chunk, on fitted and held-out chunks;
writes the tokenizer, its normalization and the report (report.json) to OUT_DIR.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vla_policy_node.spec.cli import CliParser, UsageError, run_guarded

KINDS = ("uniform", "vq", "rvq", "fast")  # train.action_tokenizer.KINDS (not imported: --help stays fast)


def load_dataset(path: Path, *, horizon: int, split: str | None) -> tuple[Any, Any, list[str] | None]:
    """-> (samples, normalization from the dataset's stats or None, action names or None)."""
    from vla_policy_node.train.lerobot_dataset import LeRobotSamples

    if not path.is_dir():
        raise UsageError(f"dataset {path} not found (a LeRobot v3 dataset directory)")

    dataset = LeRobotSamples(path, split=split, horizon=horizon)
    try:
        normalization = dataset.normalization()
    except ValueError:
        normalization = None
    names = dataset.info.features.get("action", {}).get("names")
    return dataset, normalization, list(names) if isinstance(names, list) else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = CliParser(prog="vla_train_action_tokenizer", description=__doc__.split("\n")[0])
    p.add_argument("dataset", type=Path, help="LeRobot v3 dataset directory (vla_bag_to_dataset's output)")
    p.add_argument("out", type=Path, help="output directory for the tokenizer and report.json")
    p.add_argument("--kind", choices=KINDS, required=True, help="tokenizer: uniform bins, (residual) VQ or FAST")
    p.add_argument("--horizon", type=int, default=16, help="actions per chunk (the policy's horizon)")
    p.add_argument("--split", default="train", help="dataset split ('all' for every episode)")
    p.add_argument("--stride", type=int, default=1, help="use every n-th frame's chunk")
    p.add_argument("--holdout", type=float, default=0.1, help="share of chunks held out for the report")
    p.add_argument("--bins", type=int, default=256, help="uniform: bins per action dimension")
    p.add_argument("--codebook-size", type=int, default=512, help="vq/rvq: codes per codebook")
    p.add_argument("--depth", type=int, default=2, help="rvq: number of residual codebooks")
    p.add_argument("--unit", choices=("action", "chunk"), default="action",
                   help="vq/rvq: one code per action or per whole chunk")
    p.add_argument("--steps", type=int, default=3000, help="VQ/RVQ training steps")
    p.add_argument("--scale", type=float, default=10.0, help="fast: DCT coefficient scale before rounding")
    p.add_argument("--vocab-size", type=int, default=2048, help="fast: BPE vocabulary size")
    p.add_argument("--seed", type=int, default=0, help="random seed (holdout split, VQ init)")
    return p.parse_args(argv)


def format_report(report: dict[str, Any]) -> str:
    lines = []
    for part in ("fit", "heldout"):
        if part not in report:
            continue
        r = report[part]
        tpc = r["tokens_per_chunk"]
        lines.append(f"{part}: {r['chunks']} chunks, MSE {r['mse']:.3g} (normalized units), tokens/chunk "
                     f"{tpc['mean']:.1f} (min {tpc['min']}, max {tpc['max']}), vocabulary {r['vocab_size']}")
        for name, mse in r["mse_per_dim"].items():
            lines.append(f"  {name:<16} MSE {mse:.3g}   max |err| {r['max_abs_per_dim'][name]:.3g}")
    training = {k: v for k, v in report["training"].items() if k not in ("low", "high", "half_bin_width")}
    lines.append(f"training: {json.dumps(training)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_guarded("vla_train_action_tokenizer", lambda: _run(args), args.debug)


def _run(args: argparse.Namespace) -> int:
    from vla_policy_node.model.asa.tokenizers.storage import save_tokenizer
    from vla_policy_node.train.action_tokenizer import TokenizerSpec, train_action_tokenizer

    spec = TokenizerSpec(kind=args.kind, bins=args.bins, codebook_size=args.codebook_size, depth=args.depth,
                         unit=args.unit, scale=args.scale, vocab_size=args.vocab_size)
    dataset, normalization, names = load_dataset(args.dataset, horizon=args.horizon,
                                                 split=None if args.split == "all" else args.split)
    train = {"steps": args.steps} if args.kind in ("vq", "rvq") else {}
    tokenizer, normalization, report = train_action_tokenizer(
        dataset, spec, normalization=normalization, stride=args.stride, holdout=args.holdout, seed=args.seed,
        action_names=names, **train)
    save_tokenizer(tokenizer, args.out, normalization=normalization, report=report)
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(format_report(report))
    print(f"saved {args.kind} tokenizer to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
