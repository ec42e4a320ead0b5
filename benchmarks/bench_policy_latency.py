"""Latency breakdown and peak memory of `VLAPolicy.infer` for a chosen model size, eager or on the fast path.

    python benchmarks/bench_policy_latency.py --size tiny                            # CPU, seconds
    python benchmarks/bench_policy_latency.py --size qwen2.5-vl-3b --device cuda     # bf16, default head
    python benchmarks/bench_policy_latency.py --size qwen2.5-vl-3b --device cuda --matrix --fast-path auto
    python benchmarks/bench_policy_latency.py --size tiny --matrix --fast-path full --runs 20   # the same on CPU

Models are random-initialized from configs (latency does not depend on the weights' values). The 3B size uses
Qwen2.5-VL-3B-Instruct's published architecture (36 text layers of width 2048, a 32-block 1280-wide vision tower)
cut at --select-layer (18), with a small tokenizer whose special-token ids the config matches; the default flow
head is GR00T N1.5-sized (16 DiT layers, width 1536), horizon 16, 4 Euler steps, one 224x224 camera.

--matrix runs the matched-work settings (the anchors' work: GR00T N1.5 = H16 / 4 steps, pi0 = H50 / 10 steps) for
1, 2 and 3 cameras of 224x224, each eager and on --fast-path, and prints one table (p50 / p99 of obs -> chunk, the
stages, peak memory). --fast-path: off (eager: host processor, transformers' default attention), auto / full (see
model/fast_path.py: device preprocessing, SDPA, bf16 on CUDA, compiled backbone, the denoising loop captured as
one graph; `auto` compiles only on CUDA). The fast path's compilation and graph capture happen in the warm-up
runs, as in the node, and are reported as the first-call time. Frames are passed as the observation sync passes
them (`FittedImages`, --frame-size as received), so device preprocessing starts from the camera's frame.
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
from vla_policy_node.model.fast_path import FAST_PATH_PRESETS, FastPathConfig, fast_path_preset
from vla_policy_node.model.tiny import TINY_HEAD, tiny_backbone_config, tiny_processor
from vla_policy_node.model.vla_model import VLAModel
from vla_policy_node.model.vla_policy import VLAPolicy, default_dtype
from vla_policy_node.spec import Observation, load_embodiment
from vla_policy_node.spec.embodiment import CameraSpec
from vla_policy_node.spec.images import FittedImages
from vla_policy_node.spec.normalization import normalization_from_limits

ROBOT = Path(__file__).resolve().parents[1] / "config" / "robots" / "franka_fr3.yaml"
INSTRUCTION = "pick up the red block and place it in the bowl"
MATRIX = [(cams, horizon, steps) for horizon, steps in ((16, 4), (50, 10)) for cams in (1, 2, 3)]

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


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def fast_config(args: argparse.Namespace, device: torch.device) -> FastPathConfig | None:
    """--fast-path preset, then the single-step overrides."""
    config = fast_path_preset(args.fast_path, device)
    overrides = {k: v for k, v in (("device_preprocess", args.device_preprocess),
                                   ("compile_backbone", args.compile_backbone),
                                   ("capture_head", args.capture_head), ("attention", args.attention))
                 if v is not None}
    if overrides:
        config = dataclasses.replace(config or FastPathConfig.eager(), **overrides)
    return config


def measure(args: argparse.Namespace, cameras: int, horizon: int, steps: int, fast: FastPathConfig | None) -> dict:
    """Build the model for one setting, warm it up, time `args.runs` inferences. Figures in ms."""
    device = torch.device(args.device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(args.dtype or "", default_dtype(device))
    robot = load_embodiment(ROBOT)
    cams = tuple(CameraSpec(name=f"cam{i}", topic=f"/cam{i}/image_raw", height=args.image_size,
                            width=args.image_size) for i in range(cameras))
    robot = dataclasses.replace(robot, cameras=cams)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    bcfg = backbone_config(args.size, args.image_size, args.select_layer, str(dtype).removeprefix("torch."))
    head = {**(TINY_HEAD if args.size == "tiny" else {}), "horizon": horizon, "num_steps": steps}
    model = VLAModel.build(bcfg, head, [robot], processor=tiny_processor(bcfg))
    model.to(device=device, dtype=dtype).eval()
    build_s = time.perf_counter() - t0
    policy = VLAPolicy(model, normalization_from_limits(robot), robot, num_steps=steps,
                       sync_timing=device.type == "cuda", fast_path=fast)
    rng = np.random.default_rng(0)
    frame_h, frame_w = args.frame_size or (args.image_size, args.image_size)
    by_name = {c.name: c for c in cams}

    def observation(i: int) -> Observation:
        frames = {c.name: rng.integers(0, 256, (frame_h, frame_w, 3), dtype=np.uint8) for c in cams}
        return Observation(stamp=float(i), images=FittedImages(frames, by_name), state=np.zeros(robot.state_dim),
                           instruction=INSTRUCTION)

    first = time.perf_counter()
    policy.infer(observation(-1))
    first_s = time.perf_counter() - first
    for i in range(max(0, args.warmup - 1)):
        policy.infer(observation(i))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timings = []
    for i in range(args.runs):
        policy.infer(observation(i))
        timings.append(policy.last_timings)
    stages = {
        "preprocess": [t.preprocess_ms for t in timings],
        "backbone": [t.backbone_ms for t in timings],
        "head": [sum(t.head_steps_ms) for t in timings],
        "postprocess": [t.postprocess_ms for t in timings],
        "total": [t.total_ms for t in timings],
    }
    n_steps = len(timings[0].head_steps_ms) if timings else 0
    if n_steps == steps:  # eager loop: one figure per Euler step
        stages.update({f"head_step_{k + 1}": [t.head_steps_ms[k] for t in timings] for k in range(steps)})
    return {
        "cameras": cameras, "horizon": horizon, "steps": steps,
        "fast_path": None if fast is None else dataclasses.asdict(fast),
        "device_preprocess_active": bool(policy.fast is not None and policy.fast.device_preprocess_active),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "backbone_params_m": sum(p.numel() for p in model.backbone.parameters()) / 1e6,
        "head_params_m": sum(p.numel() for p in model.head.parameters()) / 1e6,
        "llm_layers": model.backbone.num_layers, "build_s": build_s, "first_call_s": first_s,
        "peak_mib": peak_memory_mb(device),
        "ms": {k: {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99))} for k, v in stages.items()},
    }


def label(fast: FastPathConfig | None) -> str:
    if fast is None:
        return "eager"
    parts = [f"dev-pre={'on' if fast.device_preprocess else 'off'}", f"attn={fast.attention or 'default'}",
             f"compile={'on' if fast.compile_backbone else 'off'}", f"head={fast.capture_head}"]
    return "fast(" + ",".join(parts) + ")"


def print_one(result: dict) -> None:
    print(f"  {result['cameras']} cam, H={result['horizon']}, {result['steps']} steps, {label_of(result)}: "
          f"first call {result['first_call_s'] * 1e3:.0f} ms, peak {result['peak_mib']:.0f} MiB"
          f"{', device preprocessing' if result['device_preprocess_active'] else ''}")
    for name, fig in result["ms"].items():
        print(f"    {name:<12} p50 {fig['p50']:9.2f} ms  p99 {fig['p99']:9.2f} ms")


def label_of(result: dict) -> str:
    fast = result["fast_path"]
    return "eager" if fast is None else label(FastPathConfig(**fast))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "qwen2.5-vl-3b"], default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default=None,
                        help="default: bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--select-layer", type=int, default=18)
    parser.add_argument("--image-size", type=int, default=224, help="each camera's model size (square)")
    parser.add_argument("--frame-size", type=lambda s: tuple(int(v) for v in s.lower().split("x")), default=None,
                        help="HxW of the frames as the cameras deliver them (default: the image size)")
    parser.add_argument("--cameras", type=int, default=1)
    parser.add_argument("--horizon", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's); 1 gives stable figures on a shared machine")
    parser.add_argument("--fast-path", dest="fast_path", choices=FAST_PATH_PRESETS, default="off",
                        help="off: eager; auto/full: model/fast_path.py presets")
    parser.add_argument("--device-preprocess", dest="device_preprocess", action=argparse.BooleanOptionalAction,
                        default=None, help="override the preset: frames resized and normalized on the device")
    parser.add_argument("--compile-backbone", dest="compile_backbone", action=argparse.BooleanOptionalAction,
                        default=None, help="override the preset: torch.compile the backbone")
    parser.add_argument("--capture-head", dest="capture_head", choices=["none", "compile", "reduce-overhead", "auto"],
                        default=None, help="override the preset: the denoising loop as one compiled graph")
    parser.add_argument("--attention", choices=["sdpa", "eager"], default=None, help="override the preset")
    parser.add_argument("--matrix", action="store_true",
                        help="1/2/3 cameras x (H16, 4 steps | H50, 10 steps), eager and on --fast-path")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    fast = fast_config(args, device)
    print(f"device {device} ({device_name(device)}, {torch.get_num_threads()} CPU threads), torch {torch.__version__}"
          f", model {args.size} (Qwen2.5-VL architecture cut at layer {args.select_layer if args.size != 'tiny' else 2}"
          f"), {args.runs} runs after {args.warmup} warm-up; latency = observation in -> chunk out")
    settings = MATRIX if args.matrix else [(args.cameras, args.horizon, args.steps)]
    variants = [None, fast] if args.matrix and fast is not None else [fast]
    results = []
    for cameras, horizon, steps in settings:
        for variant in variants:
            result = measure(args, cameras, horizon, steps, variant)
            results.append(result)
            print_one(result)
    if len(results) > 1:
        print("\nsummary (obs -> chunk, ms):  cameras  H   steps  path       p50      p99   peak MiB")
        for r in results:
            total = r["ms"]["total"]
            path = "eager" if r["fast_path"] is None else "fast"
            print(f"{'':28}{r['cameras']:>4} {r['horizon']:>4} {r['steps']:>5}  {path:<6}"
                  f"{total['p50']:9.2f}{total['p99']:9.2f}{r['peak_mib']:10.0f}")
        if variants[0] is None and len(variants) == 2:
            for i in range(0, len(results), 2):
                eager, quick = results[i], results[i + 1]
                print(f"  {eager['cameras']} cam H{eager['horizon']}/{eager['steps']}: fast path "
                      f"{eager['ms']['total']['p50'] / quick['ms']['total']['p50']:.2f}x eager (p50)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": {k: v for k, v in vars(args).items()},
                                               "device": device_name(device), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
