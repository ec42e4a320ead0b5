"""Stage 3 of RoboAlign: the VLA. Freeze the aligned MLLM, cut it at `select_layer`, train the flow head.

The backbone is `Backbone.build(BackboneConfig(source=<aligned dir>, select_layer, freeze=True))`: the base model
class loads the saved `*ForConditionalGeneration` weights below the cut (LM head and upper layers skipped), with
the aligned processor (its added think/answer/FAST tokens are harmless to the flow head). Training is the team's
`Trainer`; its checkpoints are ordinary policy checkpoints (`VLAPolicy.from_checkpoint`).

    python -m vla_policy_node.train.roboalign.vla --config vla.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vla_policy_node.model.backbone import BackboneConfig
from vla_policy_node.model.vla_model import VLAModel
from vla_policy_node.spec import Embodiment, load_embodiment
from vla_policy_node.spec.cli import CliParser
from vla_policy_node.train.data import SampleDataset, fit_normalization
from vla_policy_node.train.roboalign.common import from_dict, load_config_file
from vla_policy_node.train.trainer import TrainConfig, Trainer


@dataclass(frozen=True)
class VLAStageConfig:
    aligned: str  # the aligned MLLM directory (`<grpo or sft output>/final`)
    train: dict[str, Any]  # TrainConfig fields (output_dir, steps, batch_size, lr, device, ...)
    select_layer: int = 12
    embodiments: list[str] = field(default_factory=list)  # embodiment YAML files
    dataset: str | None = None  # LeRobot v3 dataset directory
    split: str | None = "train"
    head: dict[str, Any] = field(default_factory=dict)  # FlowHeadConfig overrides (horizon, dim, ...)
    backbone: dict[str, Any] = field(default_factory=dict)  # extra BackboneConfig fields (dtype, num_cameras)
    normalization_stride: int = 1  # fit stats on every n-th sample


def build_model(cfg: VLAStageConfig, embodiments: list[Embodiment]) -> VLAModel:
    backbone = BackboneConfig(**{"family": "auto", **cfg.backbone, "source": cfg.aligned,
                                 "select_layer": cfg.select_layer, "freeze": True})
    return VLAModel.build(backbone, cfg.head, embodiments)


def run_vla(cfg: VLAStageConfig, dataset: SampleDataset | None = None,
            embodiments: list[Embodiment] | None = None) -> tuple[Path, list[float]]:
    """Train the head; returns (last checkpoint, this call's losses). `dataset`/`embodiments` override the
    config's files (tests)."""
    embodiments = embodiments or [load_embodiment(p) for p in cfg.embodiments]
    if not embodiments:
        raise ValueError("stage 3 needs at least one embodiment")
    model = build_model(cfg, embodiments)
    if dataset is None:
        from vla_policy_node.train.lerobot_dataset import LeRobotSamples

        if cfg.dataset is None:
            raise ValueError("stage 3 needs a dataset directory")
        dataset = LeRobotSamples(cfg.dataset, split=cfg.split, horizon=model.config.head.horizon)
    normalization = fit_normalization([dataset[i] for i in range(0, len(dataset), cfg.normalization_stride)])
    train = TrainConfig(**cfg.train)
    losses = Trainer(model, normalization, dataset, train).train()
    out = Path(train.output_dir)
    return out / (out / "latest").read_text().strip(), losses


def main(argv: list[str] | None = None) -> None:
    parser = CliParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML/JSON: aligned, select_layer, embodiments, dataset, ...")
    args = parser.parse_args(argv)
    ckpt, _ = run_vla(load_config_file(VLAStageConfig, args.config))
    print(f"policy checkpoint: {ckpt}")


__all__ = ["VLAStageConfig", "build_model", "from_dict", "main", "run_vla"]

if __name__ == "__main__":
    main()
