"""Latency breakdown and peak memory of `VLAPolicy.infer` for a chosen model size.

    python benchmarks/bench_policy_latency.py --size tiny                       # CPU, seconds
    python benchmarks/bench_policy_latency.py --size qwen2.5-vl-3b --device cuda  # bf16, default head

Models are random-initialized from configs (latency does not depend on the weights' values). The 3B size uses
Qwen2.5-VL-3B-Instruct's published architecture (36 text layers of width 2048, a 32-block 1280-wide vision tower)
cut at --select-layer, with a small tokenizer whose special-token ids the config matches; the default flow head
is GR00T N1.5-sized (16 DiT layers, width 1536), horizon 16, 4 Euler steps, one 224x224 camera.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from vla_policy_node.model.backbone import BackboneConfig
from vla_policy_node.model.tiny import TINY_HEAD, tiny_backbone_config, tiny_processor
from vla_policy_node.model.vla_model import VLAModel
from vla_policy_node.model.vla_policy import VLAPolicy, default_dtype
from vla_policy_node.spec import Observation, load_embodiment
from vla_policy_node.spec.embodiment import CameraSpec
from vla_policy_node.spec.normalization import normalization_from_limits

ROBOT = Path(__file__).resolve().parents[1] / "config" / "robots" / "franka_fr3.yaml"

QWEN25_VL_3B_TEXT = dict(hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16,
                         num_key_value_heads=2, head_dim=128, vocab_size=151936, max_position_embeddings=128000,
                         rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                                              "mrope_section": [16, 24, 24]})
QWEN25_VL_3B_VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                           fullatt_block_indexes=[7, 15, 23, 31])


def backbone_config(size: str, image_size: int, select_layer: int, dtype: str) -> BackboneConfig:
    base = tiny_backbone_config("qwen2_5_vl", image_size=image_size, dtype=dtype)
    if size == "tiny":
        return base
    model_config = json.loads(json.dumps(base.model_config))
    model_config["text_config"].update(QWEN25_VL_3B_TEXT)
    model_config["vision_config"].update(QWEN25_VL_3B_VISION)
    return dataclasses.replace(base, model_config=model_config, select_layer=select_layer)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB -> MiB, whole process


def stats(values: list[float]) -> str:
    arr = np.asarray(values)
    return f"p50 {np.percentile(arr, 50):9.2f} ms  p99 {np.percentile(arr, 99):9.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "qwen2.5-vl-3b"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default=None,
                        help="default: bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--select-layer", type=int, default=18)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); 1 gives stable figures on a shared machine")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(args.dtype or "", default_dtype(device))
    robot = load_embodiment(ROBOT)
    cams = tuple(CameraSpec(name=f"cam{i}", topic=f"/cam{i}/image_raw", height=args.image_size,
                            width=args.image_size) for i in range(args.cameras))
    robot = dataclasses.replace(robot, cameras=cams)

    t0 = time.perf_counter()
    torch.manual_seed(0)
    bcfg = backbone_config(args.size, args.image_size, args.select_layer, str(dtype).removeprefix("torch."))
    head = {**(TINY_HEAD if args.size == "tiny" else {}), "horizon": args.horizon, "num_steps": args.steps}
    model = VLAModel.build(bcfg, head, [robot], processor=tiny_processor(bcfg))
    model.to(device=device, dtype=dtype).eval()
    build_s = time.perf_counter() - t0
    n_backbone = sum(p.numel() for p in model.backbone.parameters())
    n_head = sum(p.numel() for p in model.head.parameters())
    policy = VLAPolicy(model, normalization_from_limits(robot), robot, num_steps=args.steps,
                       sync_timing=device.type == "cuda")

    rng = np.random.default_rng(0)

    def observation(i: int) -> Observation:
        images = {c.name: rng.integers(0, 256, (c.height, c.width, 3), dtype=np.uint8) for c in robot.cameras}
        return Observation(stamp=float(i), images=images, state=np.zeros(robot.state_dim),
                           instruction="pick up the red block and place it in the bowl")

    for i in range(args.warmup):
        policy.infer(observation(i))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timings = []
    for i in range(args.runs):
        policy.infer(observation(i))
        timings.append(policy.last_timings)

    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor()}"
          f", {torch.get_num_threads()} threads), dtype {dtype}, torch {torch.__version__}")
    print(f"model: {args.size}, backbone {n_backbone / 1e6:.1f}M params ({model.backbone.num_layers} LLM layers kept), "
          f"head {n_head / 1e6:.1f}M params; built in {build_s:.1f} s")
    print(f"input: {args.cameras} camera(s) {args.image_size}x{args.image_size}, H={args.horizon}, "
          f"{args.steps} Euler steps, {args.runs} runs after {args.warmup} warm-up")
    figures = {
        "preprocess": [t.preprocess_ms for t in timings],
        "backbone": [t.backbone_ms for t in timings],
        **{f"head_step_{k + 1}": [t.head_steps_ms[k] for t in timings] for k in range(args.steps)},
        "total": [t.total_ms for t in timings],
    }
    for name, values in figures.items():
        print(f"  {name:<12} {stats(values)}")
    peak = peak_memory_mb(device)
    label = "peak GPU memory allocated" if device.type == "cuda" else "peak process RSS"
    print(f"  {label}: {peak:.0f} MiB")
    if args.json:
        summary = {k: {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99))}
                   for k, v in figures.items()}
        Path(args.json).write_text(json.dumps({"args": vars(args), "peak_mib": peak, "ms": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
