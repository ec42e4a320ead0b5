"""vla_replay_test: replay a rosbag through a policy open loop and write a report (JSON, Markdown, PNG).

    vla_replay_test BAG --robot franka_fr3 --checkpoint CKPT_DIR [-o REPORT_DIR] [--target commands]

Exit status: 0 with a complete report; 2 when the bag cannot be replayed (missing topic, corrupt or truncated
bag, nothing comparable, no instruction) or an argument is bad: one line names the problem and no report is
left behind. The inference latency is simulated, fixed by default (--latency auto), so a report means the
same on every machine; --latency measured uses each call's wall time instead.
To watch a replay in rviz instead, run it on a ROS 2 machine: ros2 launch vla_bringup replay.launch.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from vla_policy_node.bagtools.cli_common import add_robot_argument, robot_from_args, setup_logging
from vla_policy_node.bagtools.replay import OpenLoopReplay, ReplayConfig, ReplayError
from vla_policy_node.control.config import ControlConfig, ExecutorConfig
from vla_policy_node.control.deployment import AUTO, STRATEGY_SETTINGS, resolve_strategy
from vla_policy_node.spec.cli import CliParser, UsageError, run_guarded
from vla_policy_node.spec.embodiment import ConfigError, Embodiment

PROGRAM = "vla_replay_test"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = CliParser(prog=PROGRAM, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("bag", help="rosbag2 directory (mcap or sqlite3)")
    add_robot_argument(parser)
    parser.add_argument("--checkpoint", required=True, help="policy checkpoint directory or model-hub id")
    parser.add_argument("-o", "--output", help="report directory (default: <bag>_replay next to the bag)")
    parser.add_argument("--target", choices=("auto", "commands", "joint_states"), default="auto",
                        help="compare with the recorded controller commands or the joint states that followed "
                             "(auto: commands when the bag has them)")
    parser.add_argument("--latency", default="auto",
                        help="inference latency in virtual time: seconds, 'auto' (fixed: the checkpoint's "
                             "benchmark.json p50 if it has one, else the robot's inference period 1/inference_hz; "
                             "the same on every machine) or 'measured' (wall time of each call: depends on load)")
    parser.add_argument("--strategy", choices=STRATEGY_SETTINGS, default=AUTO,
                        help="chunk executor strategy; auto (as the policy node): the checkpoint's "
                             "deployment.json recommendation, else rtc")
    parser.add_argument("--controller-type", dest="controller_type", default="",
                        help="override the robot YAML's controller.interface (as the policy node does)")
    parser.add_argument("--instruction", default="", help="instruction until the bag's /vla/instruction sets one")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed of the flow-matching head")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--one-process", dest="parallel", action="store_false",
                        help="compare with the recording in this process, not in a second one beside the policy "
                             "(the same report; slower)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    return parser.parse_args(list(argv))


def resolve_latency(value: str, checkpoint: str, embodiment: Embodiment) -> tuple[float | None, str]:
    """(seconds or None for measured, where it came from) for --latency."""
    if value == "measured":
        return None, ""
    if value != "auto":
        try:
            return float(value), "--latency"
        except ValueError:
            raise UsageError(f"--latency {value!r}: use seconds, auto or measured") from None
    benchmark = Path(checkpoint) / "benchmark.json"
    if benchmark.is_file():
        try:
            p50 = float(json.loads(benchmark.read_text())["latency_ms"]["p50"])
        except (ValueError, KeyError, TypeError) as error:
            raise UsageError(f"{benchmark}: expected {{\"latency_ms\": {{\"p50\": ...}}}} ({error})") from error
        return p50 / 1000.0, "the checkpoint's benchmark.json p50"
    hz = embodiment.rates.inference_hz
    return 1.0 / hz, f"the robot's inference period, 1/{hz:g} Hz"


def replay_config(args: argparse.Namespace, embodiment: Embodiment) -> ReplayConfig:
    latency, source = resolve_latency(args.latency, args.checkpoint, embodiment)
    strategy, _ = resolve_strategy(args.strategy, args.checkpoint)
    control = ControlConfig(executor=ExecutorConfig(strategy=strategy))
    return ReplayConfig(target=args.target, latency=latency, latency_source=source, instruction=args.instruction,
                        control=control, progress=args.progress, parallel=args.parallel)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging(args.verbose)
    return run_guarded(PROGRAM, lambda: _run(args), args.debug)


def _run(args: argparse.Namespace) -> int:
    try:
        from vla_policy_node.msgs.commands import resolve_controller

        embodiment = resolve_controller(robot_from_args(args), args.controller_type)
        config = replay_config(args, embodiment)
    except (ConfigError, ValueError) as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2
    bag = Path(args.bag)
    out = Path(args.output) if args.output else bag.parent / f"{bag.name}_replay"
    from vla_policy_node.bagtools.report import clear_report, write_report
    from vla_policy_node.model.vla_policy import VLAPolicy

    if out.is_dir():
        clear_report(out)  # a failed run must not leave an older report looking like this run's
    try:
        policy = VLAPolicy.from_checkpoint(args.checkpoint, embodiment, device=args.device, seed=args.seed)
    except Exception as error:  # checkpoint errors name the file; show them without a traceback
        print(f"{PROGRAM}: error: cannot load checkpoint {args.checkpoint}: {error}", file=sys.stderr)
        return 2
    try:
        result = OpenLoopReplay(embodiment, policy, config).run(bag)
    except ReplayError as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr)
        return 2
    extra = {"policy": f"checkpoint {args.checkpoint} (device {args.device}, seed {args.seed})"}
    paths = write_report(result, out, extra)
    summary = result.summary
    chunk = summary["chunk_error"]
    first = chunk["mae_per_step"][0]
    print(f"{PROGRAM}: latency model {summary['latency_model']}; {summary['counts']['inferences']} chunks compared "
          f"with the recorded {summary['target']}: MAE {chunk['mae']:.4g} (step 0: "
          f"{'-' if first is None else f'{first:.4g}'}), wall latency p50 "
          f"{summary['latency_ms'].get('p50', float('nan')):.1f} ms")
    for warning in summary.get("warnings", []):
        print(f"  warning: {warning}")
    print(f"{PROGRAM}: report: {paths['report.md']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
