"""`vla_train`'s configuration: one YAML file of dataclasses, with `key.sub=value` overrides from the command line.

    robot: franka_fr3                       # robot YAML path or built-in name
    camera_topics: ""                       # optional camera subset/mapping (spec/remap.py)
    datasets: [{path: data/fr3_pick, weight: 2.0}, {path: data/fr3_place}]
    model:
      backbone: Qwen/Qwen2.5-VL-3B-Instruct # hub id, local directory, or tiny:<family> (random, tests/sim)
      mode: lora                            # frozen | lora | full (backbone); the head always trains
      head: flow                            # flow, or a continuous action-space adapter (asa:pred, asa:rvq, ...)
    train: {steps: 20000, batch_size: 32, lr: 1e-4, save_every: 2000, val_every: 500}
    deploy: {strategy: ensemble}            # optional: written into final/deployment.json (spec/deployment.py)
    output_dir: runs/fr3_pick

Only dataclasses and YAML here: the command line parses and validates a config before torch is imported.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from vla_policy_node.spec.deployment import Deployment
from vla_policy_node.train.mixture import DatasetSpec

T = TypeVar("T")
BackboneMode = Literal["frozen", "lora", "full"]
# The continuous adapters of model/asa/config.py (CONTINUOUS; not imported: the CLI parses configs before torch);
# test_vla_train checks the two lists agree.
ASA_HEADS = ("pred", "uniform", "vq", "rvq", "fast")
TOKEN_HEADS = ("uniform", "vq", "rvq", "fast")  # the ones that decode tokens of a fitted action tokenizer


@dataclass(frozen=True)
class ModelRecipe:
    """backbone: hub id, local checkpoint-less model directory, or `tiny:<family>` (random init from a tiny
    config: tests and the simulated arm). mode: frozen (features only), lora (peft adapters), full.
    head: `flow` (GR00T-style flow matching) or `asa:<adapter>`, a continuous action-space adapter of the head
    registry (model/heads.py): pred (regression, no tokenizer) or uniform / vq / rvq / fast (token heads: they need
    `tokenizer`, a vla_train_action_tokenizer output with the same horizon). head_dim is the flow head's width or
    the adapter's hidden size."""

    backbone: str = "tiny:qwen3_vl"
    mode: BackboneMode = "frozen"
    select_layer: int = 2
    lora_rank: int = 16
    dtype: str = "float32"
    image_size: int | None = None  # tiny backbones: processor input size
    instruction_first: bool = False
    head: str = "flow"
    tokenizer: str | None = None  # asa heads: a vla_train_action_tokenizer output directory
    horizon: int = 16
    head_dim: int = 64
    aux_weight: float = 0.0  # > 0: auxiliary observation.environment_state target (training only)
    init_from: str = ""  # a checkpoint of the same architecture to start from (its aux probe left out)
    head_options: dict[str, Any] = field(default_factory=dict)  # further head config fields (flow: layers, heads)
    backbone_options: dict[str, Any] = field(default_factory=dict)  # further BackboneConfig fields (num_cameras)

    def __post_init__(self) -> None:
        if self.mode not in ("frozen", "lora", "full"):
            raise ValueError(f"model.mode must be frozen, lora or full, not {self.mode!r}")
        adapter = self.head.removeprefix("asa:")
        if self.head != "flow" and (not self.head.startswith("asa:") or adapter not in ASA_HEADS):
            raise ValueError(f"model.head must be flow or one of {['asa:' + a for a in ASA_HEADS]} (a robot arm's "
                             f"actions are continuous), not {self.head!r}")
        if adapter in TOKEN_HEADS and not self.tokenizer:
            raise ValueError(f"model.head {self.head} needs model.tokenizer (an action tokenizer directory: train "
                             f"one with vla_train_action_tokenizer --kind {adapter} --horizon {self.horizon})")
        if self.aux_weight > 0 and self.head != "flow":
            raise ValueError("model.aux_weight reads the flow head's feature context: use it with head: flow")
        if self.backbone.startswith("tiny:") and self.mode == "frozen":
            raise ValueError("a tiny (random) backbone cannot stay frozen: it would never learn to see; use "
                             "mode full (or lora)")


@dataclass(frozen=True)
class LoopRecipe:
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-5
    warmup_steps: int = 50
    decay_fraction: float = 1.0  # the cosine decay spans this last fraction of the steps (< 1: warmup-stable-decay)
    grad_clip: float = 1.0
    log_every: int = 10
    save_every: int = 500
    keep_checkpoints: int = 2
    val_every: int = 250
    val_batches: int = 4
    start_frames: int = 0
    start_weight: float = 1.0
    in_memory: bool = False  # decode every frame once up front (small datasets: training is model-bound)
    seed: int = 0
    threads: int = 0  # torch CPU threads (0: torch's default)
    device: str = "cpu"
    # under torchrun / accelerate launch (train/distributed.py): ddp (full model per process, gradients averaged)
    # or fsdp (parameters, gradients and optimizer state sharded); a plain process ignores it
    distributed: str = "ddp"

    def __post_init__(self) -> None:
        if self.distributed not in ("ddp", "fsdp"):
            raise ValueError(f"train.distributed must be ddp or fsdp, not {self.distributed!r}")
        for name in ("steps", "batch_size", "save_every", "val_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1")


@dataclass(frozen=True)
class DeployRecipe:
    """How the trained checkpoint should be run, written as `final/deployment.json` so that the policy node's
    `strategy: auto` runs it. strategy: "" (no recommendation), synchronous, ensemble or rtc."""

    strategy: str = ""
    why: str = "the training recipe's deploy.strategy"

    def deployment(self) -> Deployment | None:
        return Deployment(strategy=self.strategy, why=self.why) if self.strategy else None

    def __post_init__(self) -> None:
        try:
            self.deployment()
        except ValueError as error:
            raise ValueError(f"deploy.{error}") from None


@dataclass(frozen=True)
class TrainRecipe:
    robot: str
    datasets: tuple[DatasetSpec, ...]
    output_dir: str
    camera_topics: str = ""
    model: ModelRecipe = field(default_factory=ModelRecipe)
    train: LoopRecipe = field(default_factory=LoopRecipe)
    deploy: DeployRecipe = field(default_factory=DeployRecipe)

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("datasets: at least one LeRobot v3 dataset is needed")


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """A dataclass from nested dicts; unknown keys are errors naming the key and the known ones."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where or 'config'}: unknown key(s) {unknown}; known: {sorted(known)}")
    values = {name: _convert(hints[name], value, f"{where}.{name}".lstrip(".")) for name, value in data.items()}
    return cls(**values)


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value is None else _convert(args[0], value, where)
    if origin is tuple:
        inner = typing.get_args(hint)[0]
        return tuple(_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int | str):
        return float(value)
    if hint is int and isinstance(value, str):
        return int(value)
    if hint is bool and isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """`train.steps=100 model.mode=lora` onto the YAML's dict (values parsed as YAML scalars)."""
    data = dict(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r}: expected KEY=VALUE, e.g. train.steps=100")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node[part] = dict(node.get(part) or {})
            node = node[part]
        node[parts[-1]] = yaml.safe_load(text) if text.strip() else ""
    return data


def load_recipe(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainRecipe:
    """The recipe of a YAML file (relative dataset/tokenizer paths are taken from the current directory)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config {path} not found")
        data = yaml.safe_load(path.read_text()) or {}
    data = apply_overrides(data, overrides)
    if "datasets" in data and isinstance(data["datasets"], list):
        data["datasets"] = [{"path": d} if isinstance(d, str) else d for d in data["datasets"]]
    for key in ("robot", "output_dir"):
        if key not in data:
            raise ValueError(f"config: {key} is required (in the YAML or as {key}=...)")
    return from_dict(TrainRecipe, data)


def recipe_dict(recipe: TrainRecipe) -> dict[str, Any]:
    return dataclasses.asdict(recipe)
