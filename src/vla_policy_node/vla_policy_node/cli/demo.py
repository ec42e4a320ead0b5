"""The built-in demo: a tiny VLA for the simulated arm, saved and reloaded as a checkpoint, predicting chunks.

Runs on a fresh machine without ROS or a GPU. It exercises the real model path: a Qwen2.5-VL backbone (tiny,
random-initialized from a config because nothing can be downloaded here) cut at its select layer, the
flow-matching head, the checkpoint directory format, and `VLAPolicy.infer` on a two-camera observation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vla_policy_node.spec import Embodiment, Observation, load_embodiment
from vla_policy_node.spec.cli import CliParser, run_guarded
from vla_policy_node.spec.repo_files import SIM_ARM_CONFIG

if TYPE_CHECKING:
    from vla_policy_node.model.vla_policy import InferenceTimings

BLOCKS = {"red": (210, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 210), "yellow": (220, 200, 40)}


def sample_observation(embodiment: Embodiment, color: str, stamp: float) -> Observation:
    """A synthetic tabletop: grey table, four colored blocks; the same layout seen by every camera."""
    images = {}
    for cam in embodiment.cameras:
        img = np.full((cam.height, cam.width, 3), (120, 110, 100), np.uint8)
        size = max(2, cam.width // 8)
        for i, rgb in enumerate(BLOCKS.values()):
            x = (i + 1) * cam.width // 5 - size // 2
            y = cam.height // 2 + (i % 2) * size
            img[y: y + size, x: x + size] = rgb
        images[cam.name] = img
    mid = np.array([(j.lower + j.upper) / 2 for j in embodiment.joints]
                   + ([embodiment.gripper.upper] if embodiment.gripper else []))
    return Observation(stamp=stamp, images=images, state=mid, instruction=f"reach the {color} block")


def percentile_line(name: str, values: list[float]) -> str:
    arr = np.asarray(values)
    return f"  {name:<14} p50 {np.percentile(arr, 50):8.2f} ms   p99 {np.percentile(arr, 99):8.2f} ms"


def report_timings(timings: list[InferenceTimings]) -> list[str]:
    steps = len(timings[0].head_steps_ms)
    lines = [percentile_line("preprocess", [t.preprocess_ms for t in timings]),
             percentile_line("backbone", [t.backbone_ms for t in timings])]
    for i in range(steps):
        lines.append(percentile_line(f"head step {i + 1}", [t.head_steps_ms[i] for t in timings]))
    lines.append(percentile_line("total", [t.total_ms for t in timings]))
    return lines


def main(argv: list[str] | None = None) -> int:
    """The closed-loop simulated-arm demo (cli/sim_demo.py); `--chunk` runs the one-chunk model demo below."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--chunk" not in args:
        from vla_policy_node.cli.sim_demo import main as sim_demo

        return sim_demo(args)
    args.remove("--chunk")
    return chunk_demo(args)


def chunk_demo(argv: list[str] | None = None) -> int:
    parser = CliParser(prog="vla_demo --chunk", description=__doc__.splitlines()[0])
    parser.add_argument("--robot", default=str(SIM_ARM_CONFIG), help="robot config YAML")
    parser.add_argument("--family", default="qwen2_5_vl", help="backbone family of the tiny model",
                        choices=["qwen2_5_vl", "qwen3_vl", "paligemma", "paligemma2", "idefics3", "smolvlm"])
    parser.add_argument("--checkpoint", help="load this checkpoint (dir or hub id) instead of building a tiny one")
    parser.add_argument("--instruction-color", default="red", choices=sorted(BLOCKS), help="block to reach")
    parser.add_argument("--runs", type=int, default=20, help="timed inference calls")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="model init and sampling seed")
    args = parser.parse_args(argv)
    return run_guarded("vla_demo", lambda: _chunk_demo(args), args.debug)


def _chunk_demo(args: argparse.Namespace) -> int:
    import torch

    from vla_policy_node.model.checkpoint import save_checkpoint
    from vla_policy_node.model.tiny import build_tiny_vla
    from vla_policy_node.model.vla_policy import VLAPolicy
    from vla_policy_node.spec.normalization import normalization_from_limits

    torch.set_num_threads(max(1, torch.get_num_threads()))
    robot = load_embodiment(args.robot)
    print(f"robot: {robot.name} ({len(robot.joints)} joints{' + gripper' if robot.gripper else ''}, "
          f"cameras {list(robot.camera_names)}, action space {robot.action_space.type})")
    with tempfile.TemporaryDirectory(prefix="vla_demo_") as tmp:
        source = args.checkpoint
        if source is None:
            torch.manual_seed(args.seed)
            t0 = time.perf_counter()
            model = build_tiny_vla([robot], args.family)
            source = str(save_checkpoint(model, normalization_from_limits(robot), Path(tmp) / "tiny_vla"))
            n_params = sum(p.numel() for p in model.parameters())
            print(f"built tiny {args.family} backbone ({model.backbone.num_layers} layers kept) + flow head: "
                  f"{n_params / 1e6:.2f}M params, saved to a checkpoint in {(time.perf_counter() - t0):.2f} s")
        t0 = time.perf_counter()
        policy = VLAPolicy.from_checkpoint(source, robot, device=args.device, seed=args.seed)
        print(f"loaded checkpoint in {(time.perf_counter() - t0) * 1e3:.1f} ms "
              f"(device {policy.device}, dtype {policy.dtype}, {policy.num_steps} Euler steps)")

        obs = sample_observation(robot, args.instruction_color, stamp=time.time())
        print(f'instruction: "{obs.instruction}"')
        chunk = policy.infer(obs)
        print(f"\naction chunk: H={chunk.horizon}, dt={chunk.dt} s, stamp={chunk.stamp:.3f} "
              f"(untrained model: values are arbitrary but in the joints' units)")
        header = "   t[s] " + " ".join(f"{n[:9]:>9}" for n in chunk.names)
        print(header)
        for k in range(chunk.horizon):
            print(f"  {k * chunk.dt:5.2f} " + " ".join(f"{v:9.4f}" for v in chunk.actions[k]))

        timings = []
        for i in range(args.runs):
            policy.infer(sample_observation(robot, args.instruction_color, stamp=float(i)))
            timings.append(policy.last_timings)
        print(f"\nlatency over {args.runs} calls ({policy.device}):")
        print("\n".join(report_timings(timings)))
        print(f"  mean total     {statistics.fmean(t.total_ms for t in timings):8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
