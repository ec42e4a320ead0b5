"""The built-in demo: the simulated arm, the policy node and the command mux, closed loop from the camera image
and the instruction, with a policy trained by our own pipeline: "put the <color> block on the <color> pad"
(checkpoints/sim_pick_place/, the default) or "reach the <color> block" (--task reach, checkpoints/sim_reach/).

    ./scripts/demo.sh [--task pick_place|reach] [--episodes 20] [--checkpoint DIR] [--out demo_output]

Prints the success rate, episode time and inference latency; writes an image strip of the first episode
(scene camera every 0.5 s, with the time, the instruction and markers on the named block and its goal) and a
plot of the per-episode results with the success criterion. Runs on CPU, without ROS.
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
from vla_policy_node.spec.repo_files import REPO_ROOT, SIM_ARM_CONFIG

CHECKPOINTS = {"pick_place": REPO_ROOT / "checkpoints" / "sim_pick_place" / "checkpoint",
               "reach": REPO_ROOT / "checkpoints" / "sim_reach" / "checkpoint"}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.ERROR)
    parser = CliParser(prog="vla_demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=sorted(CHECKPOINTS), default=None,
                        help="pick_place (the default when its checkpoint is shipped) or reach")
    parser.add_argument("--checkpoint", default=None,
                        help="policy checkpoint directory or model-hub id (default: the task's shipped one)")
    parser.add_argument("--robot-config", dest="robot_config", default=str(SIM_ARM_CONFIG),
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
    from vla_policy_node.experiments.sim_arm.figures import write_plot, write_strip
    from vla_policy_node.spec.embodiment import load_embodiment

    torch.set_num_threads(args.threads)
    if args.task is None:
        args.task = "pick_place" if CHECKPOINTS["pick_place"].is_dir() else "reach"
    robot = load_embodiment(args.robot_config)
    checkpoint = args.checkpoint or str(CHECKPOINTS[args.task])
    print(f"sim arm ({args.task}) + policy node + command mux; checkpoint {checkpoint}; {args.episodes} episodes")
    system = ClosedLoopSystem(robot, load_policy(checkpoint, robot), task=args.task)

    def progress(e) -> None:
        print(f"  seed {e.seed:3d}  {e.instruction:<38} {'success' if e.success else 'fail   '} "
              f"t={e.time:4.1f}s  d={e.final_distance:.3f} m  inference p50 {np.median(e.latencies_ms):5.1f} ms")

    try:
        report = evaluate(system, range(args.first_seed, args.first_seed + args.episodes), record_first=True,
                          progress=progress)
    finally:
        system.close()
    summary = report.summary()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_strip(report.episodes[0], out / "episode_strip.png")
    write_plot(report, out / "results.png", args.task)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"success rate {summary['success_rate']:.0%} ({summary['successes']}/{summary['episodes']}), "
          f"mean episode time {summary['episode_time_mean_s']:.2f} s (successes), inference latency "
          f"p50 {summary['latency_p50_ms']:.1f} ms / p90 {summary['latency_p90_ms']:.1f} ms; "
          f"{summary['wall_seconds']:.0f} s wall")
    print(f"wrote {out / 'episode_strip.png'}, {out / 'results.png'}, {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
