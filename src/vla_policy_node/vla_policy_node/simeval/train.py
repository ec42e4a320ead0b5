"""Train a tiny VLA on simulated-arm demonstrations with the project's Trainer.

    python -m vla_policy_node.simeval.train --robot-config config/robots/sim_arm.yaml \
        --dataset demos/dataset -o runs/sim_reach --steps 3000

The model is the product's path: a tiny Qwen2.5-VL built from a config (random init, trained end to end:
freeze=False, since a random backbone that stays frozen cannot learn to see), cut at its select layer, and the
flow-matching head. The samples are read once into memory (a few thousand 64x64 frames), and the final
checkpoint is copied to <output>/final with the run's config and log beside it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vla_policy_node.model.aux_probe import AuxProbeConfig
from vla_policy_node.model.tiny import build_tiny_vla
from vla_policy_node.policy.embodiment import Embodiment, load_embodiment
from vla_policy_node.train.data import Sample
from vla_policy_node.train.lerobot_dataset import LeRobotSamples
from vla_policy_node.train.trainer import LATEST, TrainConfig, Trainer


@dataclass(frozen=True)
class SimTrainConfig:
    steps: int = 3000
    batch_size: int = 16
    lr: float = 3e-4
    warmup_steps: int = 100
    family: str = "qwen2_5_vl"  # a supported transformers family (model/families.py), tiny config
    image_size: int = 56  # the tiny processor's input: a multiple of 2 patches (28 for Qwen2.5-VL, 32 for Qwen3-VL)
    head_dim: int = 64
    horizon: int = 16
    instruction_first: bool = False  # prompt layout (BackboneConfig.instruction_first)
    aux_weight: float = 0.0  # > 0: auxiliary env-state target (the dataset's observation.environment_state)
    seed: int = 0
    threads: int = 2


class InMemorySamples:
    """A dataset's samples decoded once (images included): training is then limited by the model, not PNGs."""

    def __init__(self, samples: LeRobotSamples) -> None:
        self.samples: list[Sample] = [samples[i] for i in range(len(samples))]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]


def build_model(robot: Embodiment, config: SimTrainConfig, aux: AuxProbeConfig | None = None):
    torch.manual_seed(config.seed)
    return build_tiny_vla([robot], config.family, image_size=config.image_size, aux=aux,
                          backbone_overrides={"freeze": False, "instruction_first": config.instruction_first},
                          dim=config.head_dim, horizon=config.horizon, max_state_dim=16, max_action_dim=16)


def aux_config(source: LeRobotSamples, samples: InMemorySamples, weight: float) -> AuxProbeConfig | None:
    """The aux probe for the dataset's environment state (None when weight is 0)."""
    if weight <= 0:
        return None
    values = [s.env_state for s in samples.samples]
    if any(v is None for v in values):
        raise ValueError(f"aux_weight {weight} needs observation.environment_state in {source.root}; record the "
                         "demonstrations with it (simeval.demos does)")
    return AuxProbeConfig.fit(tuple(source.env_state_names), np.stack(values), weight)


def train(robot: Embodiment, dataset_dir: str | Path, output: str | Path, config: SimTrainConfig,
          *, until: int | None = None, progress: bool = False) -> tuple[Path, list[float], float]:
    """Train from scratch (or resume) into `output`; (final checkpoint dir, losses, seconds)."""
    torch.set_num_threads(config.threads)
    source = LeRobotSamples(dataset_dir, split=None, horizon=config.horizon, tag=robot.tag)
    samples = InMemorySamples(source)
    model = build_model(robot, config, aux_config(source, samples, config.aux_weight))
    trainer = Trainer(model, source.normalization(), samples, TrainConfig(
        output_dir=str(output), steps=config.steps, batch_size=config.batch_size, lr=config.lr,
        warmup_steps=config.warmup_steps, save_every=max(config.steps // 4, 1), keep_checkpoints=1,
        seed=config.seed, progress=progress, log_every=25))
    start = time.perf_counter()
    losses = trainer.train(until)
    seconds = time.perf_counter() - start
    output = Path(output)
    final = output / "final"
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(output / (output / LATEST).read_text().strip(), final,
                    ignore=shutil.ignore_patterns("optimizer.safetensors", "trainer_state.json"))
    (output / "train_config.json").write_text(json.dumps({"robot": robot.name, "dataset": str(dataset_dir),
                                                          **asdict(config)}, indent=2))
    return final, losses, seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vla_sim_train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--robot-config", dest="robot_config", default="config/robots/sim_arm.yaml")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("-o", "--output", required=True)
    defaults = SimTrainConfig()
    for name, value in asdict(defaults).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(value, bool):
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=value)
        else:
            parser.add_argument(flag, dest=name, type=type(value), default=value)
    args = vars(parser.parse_args(sys.argv[1:] if argv is None else argv))
    robot = load_embodiment(args.pop("robot_config"))
    dataset, output = args.pop("dataset"), args.pop("output")
    final, losses, seconds = train(robot, dataset, output, SimTrainConfig(**args), progress=True)
    print(f"{len(losses)} steps in {seconds:.0f} s; loss {losses[0]:.3f} -> {sum(losses[-50:]) / 50:.3f}; "
          f"checkpoint {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
