"""Console entry points of the RoboAlign stages: arguments are parsed here, before torch is imported, so
`--help` and argument errors are immediate; the stage module is imported only to run."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from vla_policy_node.spec.cli import CliParser, UsageError, run_guarded

STAGES = {
    "roboalign_sft": ("vla_policy_node.train.roboalign.sft",
                      "RoboAlign stage 1: supervised fine-tuning of the MLLM on VQA + FAST-token action samples",
                      "YAML/JSON: run, mllm, data (see README.md)"),
    "roboalign_grpo": ("vla_policy_node.train.roboalign.grpo",
                       "RoboAlign stage 2: GRPO alignment with the format + FAST-prefix accuracy reward",
                       "YAML/JSON: run, mllm (source: SFT output), data, ..."),
    "roboalign_vla": ("vla_policy_node.train.roboalign.vla",
                      "RoboAlign stage 3: frozen aligned MLLM + a new flow action head trained on robot data",
                      "YAML/JSON: aligned, select_layer, embodiments, dataset, ..."),
}


def _entry(program: str) -> Callable[[Sequence[str] | None], int]:
    module, description, config_help = STAGES[program]

    def main(argv: Sequence[str] | None = None) -> int:
        parser = CliParser(prog=program, description=description)
        parser.add_argument("--config", required=True, help=config_help)
        args = parser.parse_args(argv)

        def run() -> int:
            from pathlib import Path

            if not Path(args.config).is_file():
                raise UsageError(f"config {args.config} not found")
            result = importlib.import_module(module).main(["--config", args.config])
            return int(result or 0)

        return run_guarded(program, run, args.debug)

    return main


sft_main = _entry("roboalign_sft")
grpo_main = _entry("roboalign_grpo")
vla_main = _entry("roboalign_vla")
