"""Does the model know which block the instruction names? A diagnostic on the auxiliary env-state probe.

    python -m vla_policy_node.experiments.sim_arm.grounding --checkpoint DIR --layouts 100

For each layout (task seeds 0..N-1, never used for demonstrations) the first frame of every camera goes through
the backbone with the instruction, and the checkpoint's aux probe (`model/aux_probe.py`) estimates the target's
position. Reported: how often the estimate is nearer the named block than any other block (chance: 1 / number
of blocks) and the median distance to it. This separates "cannot see / ground" from "cannot act" when a closed
loop fails. Only checkpoints trained with `aux_weight > 0` have a probe.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vla_policy_node.model.checkpoint import load_checkpoint
from vla_policy_node.model.transforms.frame import Frame
from vla_policy_node.model.transforms.pipeline import TransformPipeline
from vla_policy_node.model.vla_model import VLAModel
from vla_policy_node.sim.arm import ArmSim
from vla_policy_node.sim.tasks import TaskSampler
from vla_policy_node.spec.cli import CliParser, run_guarded, wants_debug
from vla_policy_node.spec.embodiment import Embodiment, load_embodiment
from vla_policy_node.spec.normalization import NormalizationSet
from vla_policy_node.spec.repo_files import SIM_ARM_CONFIG


@dataclass(frozen=True)
class GroundingReport:
    layouts: int
    nearest_is_target: float  # fraction of layouts
    median_error_m: float  # horizontal distance from the estimate to the named block
    chance: float

    def to_dict(self) -> dict[str, float]:
        return {"layouts": self.layouts, "nearest_is_target": self.nearest_is_target,
                "median_error_m": self.median_error_m, "chance": self.chance}


def probe_grounding(model: VLAModel, normalization: NormalizationSet, robot: Embodiment,
                    seeds: Sequence[int]) -> GroundingReport:
    if model.config.aux is None:
        raise ValueError("this checkpoint has no auxiliary env-state probe (trained with aux_weight 0)")
    pipeline = TransformPipeline.from_model(model, normalization, robot)  # what the policy feeds the model
    sampler = TaskSampler()
    hits, errors = 0, []
    with ArmSim({c.name: (c.height, c.width) for c in robot.cameras}) as sim:
        for seed in seeds:
            task = sampler.task(int(seed))
            sim.reset(task.layout, task.initial_arm)
            sim.advance(0.02)
            state = np.array([*sim.arm_positions(), sim.gripper_position()])[: robot.state_dim]
            frame = Frame(tag=robot.tag, images={c.name: sim.render(c.name) for c in robot.cameras}, state=state,
                          instruction=task.instruction)
            batch = pipeline.inputs([frame])
            estimate = model.predict_env_state(batch["inputs"], batch["state"], batch["category"])[0, :2].numpy()
            blocks = {c: np.array([p.x, p.y]) for c, p in task.layout.blocks.items()}
            nearest = min(blocks, key=lambda c: float(np.linalg.norm(blocks[c] - estimate)))
            hits += nearest == task.target
            errors.append(float(np.linalg.norm(blocks[task.target] - estimate)))
    return GroundingReport(len(errors), hits / max(len(errors), 1), float(np.median(errors)),
                           1.0 / len(sampler.scene.colors))


def _main(argv: Sequence[str] | None) -> int:
    parser = CliParser(prog="vla_sim_grounding", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.HelpFormatter)
    parser.add_argument("--robot-config", dest="robot_config", default=str(SIM_ARM_CONFIG))
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--layouts", type=int, default=100)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)
    model, normalization = load_checkpoint(args.checkpoint)
    report = probe_grounding(model, normalization, load_embodiment(args.robot_config), range(args.layouts))
    print(json.dumps(report.to_dict(), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Bad input or a failure is one line on stderr and exit code 2 (`--debug`: the traceback too)."""
    return run_guarded("vla_sim_grounding", lambda: _main(argv), wants_debug(argv))


if __name__ == "__main__":
    sys.exit(main())
