"""`vla_train`: train a policy from a recipe (train/recipe.py): model built from a pretrained (or tiny) backbone,
LeRobot v3 datasets mixed by weight, the project's resumable Trainer, validation, plots.

Validation every `val_every` steps on the datasets' val splits: the flow loss (fixed noise and times, so values
compare across steps) and the open-loop action error per joint (the policy's chunk against the recorded
actions, valid steps only; in physical units). `metrics.jsonl` gets train and val rows; `loss.png` plots them.
A run resumes exactly from `output_dir/latest` (weights, optimizer, schedule, RNG). `final/` is the last
checkpoint without trainer state: what the node, replay and `vla_policy_node.model` load.

Multi-GPU/FSDP: launch the same command with `torchrun --nproc_per_node N -m vla_policy_node.cli.vla_train ...`
(or `accelerate launch -m ...`, which sets the same variables); each process reads WORLD_SIZE/RANK/LOCAL_RANK and
trains data-parallel, `train.distributed` ddp or fsdp (train/distributed.py); on CPU over gloo, the same path.
`train.batch_size` is per process.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vla_policy_node.spec.deployment import write_deployment
from vla_policy_node.spec.embodiment import Embodiment
from vla_policy_node.spec.normalization import NormalizationSet
from vla_policy_node.spec.types import Observation
from vla_policy_node.train.data import SampleDataset
from vla_policy_node.train.lerobot_format import DatasetFormatError
from vla_policy_node.train.mixture import Mixture
from vla_policy_node.train.recipe import TrainRecipe, recipe_dict
from vla_policy_node.train.trainer import LATEST, TrainConfig, Trainer


def build_model(recipe: TrainRecipe, robot: Embodiment, aux: Any = None) -> Any:
    """The model a recipe describes: the one place that knows how backbones and heads are put together."""
    spec = recipe.model
    torch.manual_seed(recipe.train.seed)
    from vla_policy_node.model.backbone import BackboneConfig, LoraSpec

    lora = LoraSpec(rank=spec.lora_rank) if spec.mode == "lora" else None
    backbone = {**spec.backbone_options, "freeze": spec.mode != "full", "instruction_first": spec.instruction_first,
                "select_layer": spec.select_layer, "lora": lora}
    processor = None
    if spec.backbone.startswith("tiny:"):
        from vla_policy_node.model.tiny import tiny_backbone_config, tiny_processor

        config = tiny_backbone_config(spec.backbone.removeprefix("tiny:"), image_size=spec.image_size, **backbone)
        processor = tiny_processor(config)
    else:
        config = BackboneConfig(**{"family": "auto", **backbone, "source": spec.backbone, "dtype": spec.dtype})
    if spec.head != "flow":
        return _build_asa(recipe, robot, config, processor)
    from vla_policy_node.model.tiny import TINY_HEAD
    from vla_policy_node.model.vla_model import VLAModel

    head = {**spec.head_options, "dim": spec.head_dim, "horizon": spec.horizon}
    if spec.backbone.startswith("tiny:"):
        head = {**TINY_HEAD, **head, "max_state_dim": 16, "max_action_dim": 16}
    return VLAModel.build(config, head, [robot], aux=aux, processor=processor)


def _build_asa(recipe: TrainRecipe, robot: Embodiment, backbone: Any, processor: Any) -> Any:
    """A VLA whose head is the recipe's action-space adapter (`asa:<adapter>`), with its tokenizer if it has one."""
    from vla_policy_node.model.asa.build import build_asa_vla

    spec = recipe.model
    tokenizer = None
    if spec.tokenizer:
        tokenizer = _tokenizer(spec.tokenizer, spec.horizon, robot)[0]
    return build_asa_vla(backbone, spec.head.removeprefix("asa:"), embodiments=[robot], tokenizer=tokenizer,
                         horizon=spec.horizon, hidden=spec.head_dim, processor=processor, **spec.head_options)


def _tokenizer(path: str, horizon: int, robot: Embodiment) -> tuple[Any, Any]:
    """(tokenizer, its action Normalizer or None) of a vla_train_action_tokenizer directory, checked against the
    recipe's horizon and the robot's action dimensionality."""
    from vla_policy_node.model.asa.tokenizers.storage import load_tokenizer

    if not Path(path).is_dir():
        raise FileNotFoundError(f"model.tokenizer: {path} not found (a vla_train_action_tokenizer output)")
    tokenizer, normalization = load_tokenizer(path)
    if tokenizer.horizon != horizon:
        raise ValueError(f"model.tokenizer {path} encodes chunks of {tokenizer.horizon} actions, model.horizon is "
                         f"{horizon}: set model.horizon={tokenizer.horizon} or refit the tokenizer")
    if tokenizer.action_dim != robot.action_dim:
        raise ValueError(f"model.tokenizer {path} encodes {tokenizer.action_dim} action dims, {robot.tag} has "
                         f"{robot.action_dim}")
    if normalization is None:
        return tokenizer, None
    entries = normalization.to_dict()
    tag = robot.tag if robot.tag in entries else next(iter(entries)) if len(entries) == 1 else None
    return tokenizer, None if tag is None else normalization[tag].action


def _normalization(recipe: TrainRecipe, robot: Embodiment, train: Mixture) -> Any:
    """The mixture's statistics; a token head takes its actions' normalization from its tokenizer (the tokens
    were fitted on actions normalized that way: other statistics would move every bin boundary)."""
    from vla_policy_node.spec.normalization import EmbodimentNormalization, NormalizationSet

    norm = train.normalization()
    if not recipe.model.tokenizer or recipe.model.head == "flow":
        return norm
    action = _tokenizer(recipe.model.tokenizer, recipe.model.horizon, robot)[1]
    if action is None:
        return norm
    own = norm[robot.tag]
    return NormalizationSet({robot.tag: EmbodimentNormalization(own.state, action)})


def warm_start(model: Any, checkpoint: str | Path) -> int:
    """Copy `checkpoint`'s weights into `model` (same architecture), all but the aux probe's (a new task's env
    state may differ); returns how many tensors were copied. Anything else that differs is an error."""
    from safetensors import safe_open

    own = model.state_dict()
    path = Path(checkpoint) / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"model.init_from: {path} not found")
    with safe_open(str(path), framework="pt", device="cpu") as f:
        stored = f.keys()  # a safetensors handle is not iterable
        keys = [k for k in stored if not k.startswith("aux")]
        differ = [k for k in keys if k not in own or tuple(f.get_slice(k).get_shape()) != tuple(own[k].shape)]
        missing = [k for k in own if not k.startswith("aux") and k not in keys]
        if differ or missing:
            raise ValueError(f"model.init_from: {checkpoint} is not this model's architecture ({len(differ)} tensors "
                             f"differ, e.g. {differ[:2]}; {len(missing)} missing, e.g. {missing[:2]})")
        with torch.no_grad():
            for k in keys:
                own[k].copy_(f.get_tensor(k))
    return len(keys)


def _aux(recipe: TrainRecipe, train: Mixture) -> Any:
    if recipe.model.aux_weight <= 0:
        return None
    from vla_policy_node.model.aux_probe import AuxProbeConfig

    values = train.env_states()
    if any(v is None for v in values):
        raise ValueError("model.aux_weight > 0 needs observation.environment_state in every dataset")
    names = train.parts[0].env_state_names or ()
    return AuxProbeConfig.fit(tuple(names), np.stack(values), recipe.model.aux_weight)


class Validation:
    """Val loss and open-loop action error per joint on a fixed set of val samples."""

    def __init__(self, val: SampleDataset, robot: Embodiment, batches: int, batch_size: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        count = min(len(val), batches * batch_size)
        self.samples = [val[int(i)] for i in rng.choice(len(val), size=count, replace=False)]
        self.robot = robot
        self.batch_size = batch_size
        self.seed = seed

    def __call__(self, trainer: Trainer) -> dict[str, Any]:
        from vla_policy_node.model.vla_policy import VLAPolicy
        from vla_policy_node.train.data import collate_samples

        model = trainer.model
        dtype = next(model.head.parameters()).dtype
        losses = []
        state = torch.get_rng_state()
        torch.manual_seed(self.seed)  # the same noise and times at every validation
        with torch.no_grad():
            model.eval()
            for k in range(0, len(self.samples), self.batch_size):
                batch = collate_samples(self.samples[k:k + self.batch_size], trainer.pipeline)
                losses.append(float(model.loss(trainer.pipeline.to_device(batch, trainer.device, dtype))))
            policy = VLAPolicy(model, trainer.normalization, self.robot, seed=self.seed)
            errors, valid = [], []
            for k in range(0, len(self.samples), self.batch_size):
                part = self.samples[k:k + self.batch_size]
                observations = [Observation(0.0, s.images, s.state, s.instruction) for s in part]
                for sample, chunk in zip(part, policy.infer_batch(observations), strict=True):
                    h = min(chunk.actions.shape[0], sample.actions.shape[0])
                    errors.append(np.abs(chunk.actions[:h] - sample.actions[:h]))
                    valid.append(np.asarray(sample.valid[:h], bool))
        torch.set_rng_state(state)
        model.train()
        err = np.concatenate(errors)[np.concatenate(valid)]
        per_joint = dict(zip(self.robot.action_names, err.mean(0).tolist(), strict=True))
        return {"val_loss": float(np.mean(losses)), "val_action_mae": float(err.mean()),
                "val_action_mae_per_joint": per_joint}


def plot_metrics(output: Path) -> Path | None:
    """loss.png: training loss and validation loss / action error over steps, from metrics.jsonl."""
    path = output / "metrics.jsonl"
    if not path.is_file():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    val = [(r["step"], r["val_loss"], r["val_action_mae"]) for r in rows if "val_loss" in r]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    if train:
        a.plot(*zip(*train, strict=True), label="train")
    if val:
        a.plot([v[0] for v in val], [v[1] for v in val], "o-", label="val")
        b.plot([v[0] for v in val], [v[2] for v in val], "o-")
    a.set(xlabel="step", ylabel="flow loss", yscale="log")
    a.legend()
    b.set(xlabel="step", ylabel="val action MAE (physical units)", title="open loop, valid steps")
    fig.tight_layout()
    out = output / "loss.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def run(recipe: TrainRecipe, robot: Embodiment, *, progress: bool = True, until: int | None = None) -> dict[str, Any]:
    """Train (or resume) `recipe` on its datasets; returns a summary (final checkpoint, losses, validation)."""
    loop = recipe.train
    if loop.threads > 0:
        torch.set_num_threads(loop.threads)
    common = {"horizon": recipe.model.horizon, "tag": robot.tag, "require_cameras": robot.camera_names}
    train = Mixture(recipe.datasets, split="train", start_frames=loop.start_frames, start_weight=loop.start_weight,
                    in_memory=loop.in_memory, **common)
    try:
        val: Mixture | None = Mixture(recipe.datasets, split="val", in_memory=False, **common)
    except DatasetFormatError:
        val = None  # no val split (a dataset of one episode): training only
    return train_on(recipe, robot, train, val, _normalization(recipe, robot, train), weights=train.weights,
                    aux=_aux(recipe, train), progress=progress, until=until)


def train_on(recipe: TrainRecipe, robot: Embodiment, train: SampleDataset, val: SampleDataset | None,
             normalization: NormalizationSet, *, weights: np.ndarray | None = None, aux: Any = None,
             progress: bool = True, until: int | None = None) -> dict[str, Any]:
    """`run` on given samples (the recipe's model and loop; its `datasets` only recorded): the one training path,
    which callers with samples of their own (RoboAlign stage 3's in-memory data) share."""
    loop = recipe.train
    if loop.threads > 0:
        torch.set_num_threads(loop.threads)
    from vla_policy_node.train.distributed import setup

    parallel = setup(loop.distributed, loop.device)
    try:
        return _train(recipe, robot, train, val, normalization, parallel, weights=weights, aux=aux,
                      progress=progress, until=until)
    finally:
        parallel.close()


def _train(recipe: TrainRecipe, robot: Embodiment, train: SampleDataset, val: SampleDataset | None,
           normalization: NormalizationSet, parallel: Any, *, weights: np.ndarray | None, aux: Any, progress: bool,
           until: int | None) -> dict[str, Any]:
    loop = recipe.train
    main = parallel.is_main
    output = Path(recipe.output_dir)
    if main:
        output.mkdir(parents=True, exist_ok=True)
        (output / "recipe.json").write_text(json.dumps(recipe_dict(recipe), indent=2))
    model = build_model(recipe, robot, aux)
    if recipe.model.init_from:
        warm_start(model, recipe.model.init_from)
    config = TrainConfig(output_dir=str(output), steps=loop.steps, batch_size=loop.batch_size, lr=loop.lr,
                         weight_decay=loop.weight_decay, warmup_steps=loop.warmup_steps,
                         decay_fraction=loop.decay_fraction, grad_clip=loop.grad_clip,
                         log_every=loop.log_every, save_every=loop.save_every, keep_checkpoints=loop.keep_checkpoints,
                         seed=loop.seed, device=parallel.device(loop.device), progress=progress)
    trainer = Trainer(model, normalization, train, config, sample_weights=weights, parallel=parallel)
    validation = Validation(val, robot, loop.val_batches, loop.batch_size, loop.seed) if val is not None else None
    stop = loop.steps if until is None else min(until, loop.steps)
    losses: list[float] = []
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    while True:
        target = min(stop, (trainer.step // loop.val_every + 1) * loop.val_every)
        losses += trainer.train(until=target)
        trainer.config = dataclasses.replace(config, resume=False)  # resumed once, at the start
        if validation is not None and (trainer.step % loop.val_every == 0 or trainer.step >= stop):
            with parallel.full_params():  # rank 0 validates the whole model
                if main:
                    row = {"step": trainer.step, **validation(trainer)}
                    results.append(row)
                    with (output / "metrics.jsonl").open("a") as metrics:
                        metrics.write(json.dumps(row) + "\n")
            parallel.barrier()
        if trainer.step >= stop:
            break
    final = output / "final"
    if main and trainer.step >= loop.steps:
        if final.exists():
            shutil.rmtree(final)
        shutil.copytree(output / (output / LATEST).read_text().strip(), final,
                        ignore=shutil.ignore_patterns("optimizer.safetensors", "trainer_state.json", "rank-*"))
        deployment = recipe.deploy.deployment()
        if deployment is not None:
            write_deployment(final, deployment)
    plot = plot_metrics(output) if main else None
    parallel.barrier()
    return {"final": str(final) if final.exists() else None, "steps": trainer.step, "losses": losses,
            "validation": results, "plot": str(plot) if plot else None,
            "seconds": time.perf_counter() - start, "train_samples": len(train),
            "val_samples": 0 if val is None else len(val), "world_size": parallel.world_size,
            "distributed": parallel.strategy}
