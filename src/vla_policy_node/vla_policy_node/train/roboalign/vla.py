"""Stage 3 of RoboAlign: the VLA. Freeze the aligned MLLM, cut it at `select_layer`, train the flow head.

Stage 3 is a `vla_train` recipe (config/train/roboalign_stage3.yaml: `model.backbone` the aligned directory,
`model.mode: frozen`); this module only translates the older stage-3 config (`configs/vla.yaml`) into that recipe
and runs `vla_train`'s training path, so both commands train the same way (checkpoints, validation, exact resume,
`final/` for `VLAPolicy.from_checkpoint`). The backbone loads the aligned `*ForConditionalGeneration` weights below
the cut (LM head and upper layers skipped), with the aligned processor (its added think/answer/FAST tokens are
harmless to the flow head). Normalization: the dataset's meta/stats.json (train split), as vla_train; in-memory
samples (tests) are fitted every `normalization_stride`-th sample.

    python -m vla_policy_node.train.roboalign.vla --config vla.yaml     # = roboalign_vla --config vla.yaml
    vla_train config/train/roboalign_stage3.yaml                          # the same training
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from vla_policy_node.model.flow_head import FlowHeadConfig
from vla_policy_node.spec import Embodiment, load_embodiment
from vla_policy_node.spec.cli import CliParser
from vla_policy_node.train.data import SampleDataset, fit_normalization
from vla_policy_node.train.mixture import DatasetSpec
from vla_policy_node.train.recipe import LoopRecipe, ModelRecipe, TrainRecipe
from vla_policy_node.train.roboalign.common import from_dict, load_config_file


@dataclass(frozen=True)
class VLAStageConfig:
    aligned: str  # the aligned MLLM directory (`<grpo or sft output>/final`)
    train: dict[str, Any]  # TrainConfig fields (output_dir, steps, batch_size, lr, device, ...)
    select_layer: int = 12
    embodiments: list[str] = field(default_factory=list)  # embodiment YAML files (one: vla_train trains one robot)
    dataset: str | None = None  # LeRobot v3 dataset directory
    split: str | None = "train"
    head: dict[str, Any] = field(default_factory=dict)  # FlowHeadConfig overrides (horizon, dim, ...)
    backbone: dict[str, Any] = field(default_factory=dict)  # extra BackboneConfig fields (dtype, num_cameras)
    normalization_stride: int = 1  # in-memory samples: fit stats on every n-th sample


_LOOP_KEYS = {f.name for f in fields(LoopRecipe)}
_HEAD_DEFAULTS = {f.name: f.default for f in fields(FlowHeadConfig)}


def stage3_recipe(cfg: VLAStageConfig, robot: str | None = None) -> tuple[TrainRecipe, bool]:
    """(the vla_train recipe of a stage-3 config, whether to show progress)."""
    if robot is None:
        if len(cfg.embodiments) != 1:
            raise ValueError(f"stage 3 trains one robot per run (vla_train), the config names {len(cfg.embodiments)}"
                             " embodiments")
        robot = cfg.embodiments[0]
    train = dict(cfg.train)
    output_dir = train.pop("output_dir")
    progress = bool(train.pop("progress", True))
    unknown = sorted(set(train) - _LOOP_KEYS)
    if unknown:
        raise ValueError(f"train: {unknown} not supported by vla_train's loop; known: {sorted(_LOOP_KEYS)}")
    train.setdefault("val_every", train.get("steps", LoopRecipe.steps))  # validate at the end
    head = dict(cfg.head)
    backbone = dict(cfg.backbone)
    model = ModelRecipe(backbone=cfg.aligned, mode="frozen", select_layer=cfg.select_layer,
                        dtype=backbone.pop("dtype", "float32"), head="flow",
                        horizon=head.pop("horizon", _HEAD_DEFAULTS["horizon"]), head_dim=head.pop("dim",
                                                                                                _HEAD_DEFAULTS["dim"]),
                        head_options=head, backbone_options=backbone)
    datasets = (DatasetSpec(cfg.dataset),) if cfg.dataset else (DatasetSpec("<in memory>"),)
    recipe = TrainRecipe(robot=robot, datasets=datasets, output_dir=output_dir, model=model,
                         train=LoopRecipe(**train))
    return recipe, progress


def run_vla(cfg: VLAStageConfig, dataset: SampleDataset | None = None,
            embodiments: list[Embodiment] | None = None) -> tuple[Path, list[float]]:
    """Train the head through vla_train; returns (final checkpoint, this call's losses). `dataset`/`embodiments`
    replace the config's files (tests: in-memory samples, trained without a val split)."""
    from vla_policy_node.train import vla_train

    if embodiments is not None and len(embodiments) != 1:
        raise ValueError(f"stage 3 trains one robot per run (vla_train), got {len(embodiments)} embodiments")
    robot = embodiments[0] if embodiments else None
    recipe, progress = stage3_recipe(cfg, robot.tag if robot else None)
    if dataset is None:
        if cfg.dataset is None:
            raise ValueError("stage 3 needs a dataset directory")
        robot = robot or load_embodiment(recipe.robot)
        if cfg.split == "train":  # validated on the val split, as vla_train
            summary = vla_train.run(recipe, robot, progress=progress)
        else:  # another split (None: every episode): trained on it, nothing left to validate on
            from vla_policy_node.train.mixture import Mixture

            data = Mixture(recipe.datasets, split=cfg.split, horizon=recipe.model.horizon, tag=robot.tag,
                           require_cameras=robot.camera_names)
            summary = vla_train.train_on(recipe, robot, data, None, data.normalization(), weights=data.weights,
                                         progress=progress)
    else:
        assert robot is not None, "in-memory samples need their embodiment"
        normalization = fit_normalization([dataset[i] for i in range(0, len(dataset), cfg.normalization_stride)])
        summary = vla_train.train_on(recipe, robot, dataset, None, normalization, progress=progress)
    return Path(summary["final"]), summary["losses"]


def main(argv: list[str] | None = None) -> None:
    parser = CliParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="YAML/JSON: aligned, select_layer, embodiments, dataset, ...")
    args = parser.parse_args(argv)
    ckpt, _ = run_vla(load_config_file(VLAStageConfig, args.config))
    print(f"policy checkpoint: {ckpt}")


__all__ = ["VLAStageConfig", "from_dict", "main", "run_vla", "stage3_recipe"]

if __name__ == "__main__":
    main()
