"""The built-in demo: the simulated arm, the policy node and the command mux, closed loop on "reach the <color>
block" from the camera images, with the policy trained by our own pipeline (checkpoints/sim_reach/).

    ./scripts/demo.sh [--episodes 20] [--checkpoint DIR] [--out demo_output]

Prints the success rate, episode time and inference latency; writes an image strip of the first episode
(scene camera, every 0.3 s) and a plot of the per-episode results. Runs on CPU, without ROS.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vla_policy_node.spec.cli import CliParser, run_guarded

REPO = Path(__file__).resolve().parents[4]
CHECKPOINT = REPO / "checkpoints" / "sim_reach"


def write_strip(frames: list[np.ndarray], path: Path, every: int = 3) -> None:
    from PIL import Image

    picked = frames[::every] + ([frames[-1]] if (len(frames) - 1) % every else [])
    strip = np.concatenate([np.pad(f, ((2, 2), (2, 2), (0, 0)), constant_values=255) for f in picked], axis=1)
    Image.fromarray(strip).resize((strip.shape[1] * 2, strip.shape[0] * 2), Image.NEAREST).save(path)


def write_plot(report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    episodes = report.episodes
    colors = ["tab:green" if e.success else "tab:red" for e in episodes]
    a.bar(range(len(episodes)), [e.final_distance for e in episodes], color=colors)
    a.axhline(0.05, color="k", lw=0.8, ls="--")
    a.set(xlabel="episode (layout seed)", ylabel="final tool distance to target (m)",
          title=f"success {report.success_rate:.0%} (green)")
    latencies = np.concatenate([e.latencies_ms for e in episodes])
    b.hist(latencies, bins=30)
    b.set(xlabel="inference latency (ms)", ylabel="count", title="policy latency (CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR)
    parser = CliParser(prog="vla_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=str(CHECKPOINT / "checkpoint"),
                        help="policy checkpoint directory or model-hub id")
    parser.add_argument("--robot-config", dest="robot_config", default=str(REPO / "config/robots/sim_arm.yaml"),
                        help="robot YAML of the simulated arm")
    parser.add_argument("--episodes", type=int, default=20, help="episodes (unseen layouts) to run")
    parser.add_argument("--first-seed", dest="first_seed", type=int, default=0, help="layout seed of episode 0")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", default="demo_output", help="directory for the image strip, plot and summary")
    parser.add_argument("--chunk", action="store_true", help="run the one-chunk model demo instead (--chunk --help)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return run_guarded("vla_demo", lambda: _run(args), args.debug)


def _run(args: argparse.Namespace) -> int:
    import torch

    from vla_policy_node.experiments.sim_arm.closed_loop import ClosedLoopSystem, evaluate
    from vla_policy_node.experiments.sim_arm.evaluate import load_policy
    from vla_policy_node.spec.embodiment import load_embodiment

    torch.set_num_threads(args.threads)
    robot = load_embodiment(args.robot_config)
    print(f"sim arm + policy node + command mux; checkpoint {args.checkpoint}; {args.episodes} episodes")
    system = ClosedLoopSystem(robot, load_policy(args.checkpoint, robot))

    def progress(e) -> None:
        print(f"  seed {e.seed:3d}  {e.instruction:<24} {'success' if e.success else 'fail   '} "
              f"t={e.time:4.1f}s  d={e.final_distance:.3f} m  inference p50 {np.median(e.latencies_ms):5.1f} ms")

    try:
        report = evaluate(system, range(args.first_seed, args.first_seed + args.episodes), record_first=True,
                          progress=progress)
    finally:
        system.close()
    summary = report.summary()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_strip(report.episodes[0].frames, out / "episode_strip.png")
    write_plot(report, out / "results.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"success rate {summary['success_rate']:.0%} ({summary['successes']}/{summary['episodes']}), "
          f"mean episode time {summary['episode_time_mean_s']:.2f} s (successes), inference latency "
          f"p50 {summary['latency_p50_ms']:.1f} ms / p90 {summary['latency_p90_ms']:.1f} ms; "
          f"{summary['wall_seconds']:.0f} s wall")
    print(f"wrote {out / 'episode_strip.png'}, {out / 'results.png'}, {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
