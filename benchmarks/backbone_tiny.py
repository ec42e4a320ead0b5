"""Prints build / prepare / forward times of the tiny backbone of every family on this machine (CPU by default).

    python benchmarks/backbone_tiny.py [--device cuda] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vla_policy_node.model.tiny import build_tiny_backbone, tiny_backbone_config

VARIANTS = ("qwen2_5_vl", "qwen3_vl", "paligemma", "paligemma2", "idefics3", "smolvlm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = [[rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2)] for _ in range(2)]
    instructions = ["pick up the red block and put it in the blue bowl", "open"]
    print(f"batch 2 x 2 cameras, threads {torch.get_num_threads()}, device {args.device}")
    print(f"{'family':<12} {'params':>8} {'tokens':>6} {'build ms':>9} {'prepare ms':>10} {'forward ms':>10}")
    for variant in VARIANTS:
        t0 = time.perf_counter()
        backbone = build_tiny_backbone(tiny_backbone_config(variant)).to(args.device)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            inputs = backbone.prepare(images, instructions)
        prepare = (time.perf_counter() - t0) / args.repeats
        backbone(inputs)  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            feats, _ = backbone(inputs)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        forward = (time.perf_counter() - t0) / args.repeats
        params = sum(p.numel() for p in backbone.parameters())
        print(f"{variant:<12} {params:>8} {feats.shape[1]:>6} {build * 1e3:>9.1f} {prepare * 1e3:>10.2f} "
              f"{forward * 1e3:>10.2f}")


if __name__ == "__main__":
    main()
