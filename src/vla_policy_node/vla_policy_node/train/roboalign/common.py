"""Shared plumbing of the RoboAlign stages: config files, data sources, the accelerate run, checkpoints, metrics.

Distribution is accelerate's (DDP or FSDP through `accelerate launch` / torchrun, bf16 mixed precision); each
stage writes `checkpoint-<step>/` (accelerate state: model, optimizer, scheduler, RNG) + `latest`, and resumes
from it, plus `metrics.jsonl` (one line per logged step) on the main process.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from accelerate import Accelerator

from vla_policy_node.model.asa.tokenizers.fast import FastTokenizer
from vla_policy_node.model.asa.tokenizers.storage import load_tokenizer
from vla_policy_node.train.roboalign.data import ActionSamples, Mix, VQASamples, load_reasoning

T = TypeVar("T")
LATEST = "latest"


@dataclass(frozen=True)
class SourceConfig:
    """One data source of the mix. kind: 'vqa' (JSONL layout of data.py) or 'lerobot' (a LeRobot v3 dataset
    directory, answers as FAST tokens from `tokenizer`, a `vla_train_action_tokenizer` output directory)."""

    kind: str
    path: str
    weight: float = 1.0
    tokenizer: str | None = None
    reasoning: str | None = None
    split: str | None = "train"


@dataclass(frozen=True)
class RunConfig:
    output_dir: str
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-5
    weight_decay: float = 0.0
    warmup_steps: int = 50
    grad_clip: float = 1.0
    grad_accum: int = 1
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16" (accelerate)
    log_every: int = 10
    save_every: int = 500
    keep_checkpoints: int = 2
    seed: int = 0
    cpu: bool = False
    progress: bool = True


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Nested dataclass from plain dicts/lists (JSON or YAML), unknown keys rejected."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _convert(hints[key], value)
    return cls(**kwargs)


def _convert(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(args[0], value) if len(args) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        if hasattr(hint, "from_dict"):
            return hint.from_dict(value)
        return from_dict(hint, value)
    if origin in (list, tuple) and isinstance(value, list):
        args = typing.get_args(hint)
        items = [_convert(args[0], v) for v in value] if args else value
        return tuple(items) if origin is tuple else items
    return value


def load_config_file(cls: type[T], path: str | Path) -> T:
    text = Path(path).read_text()
    if str(path).endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    return from_dict(cls, data)


def build_sources(sources: list[SourceConfig]) -> tuple[Mix, list[ActionSamples]]:
    """The SFT mix, and its action sources (GRPO's prompts)."""
    from vla_policy_node.train.lerobot_dataset import LeRobotSamples

    built: list[Any] = []
    actions: list[ActionSamples] = []
    for src in sources:
        if src.kind == "vqa":
            built.append(VQASamples(src.path))
        elif src.kind == "lerobot":
            if src.tokenizer is None:
                raise ValueError(f"lerobot source {src.path} needs a FAST tokenizer directory")
            tokenizer, normalization = load_tokenizer(src.tokenizer)
            if not isinstance(tokenizer, FastTokenizer) or normalization is None:
                raise ValueError(f"{src.tokenizer}: need a fitted FAST tokenizer saved with its normalization")
            dataset = LeRobotSamples(src.path, split=src.split, horizon=tokenizer.horizon)
            samples = ActionSamples(dataset, tokenizer, normalization, reasoning=load_reasoning(src.reasoning))
            built.append(samples)
            actions.append(samples)
        else:
            raise ValueError(f"unknown source kind {src.kind!r} (vqa | lerobot)")
    return Mix(built, [s.weight for s in sources]), actions


@dataclass
class Checkpoints:
    """accelerate state under output_dir/checkpoint-<step>, `latest` pointing at the newest."""

    out: Path
    keep: int = 2
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, accelerator: Accelerator, step: int, rng: np.random.Generator) -> Path:
        ckpt = self.out / f"checkpoint-{step:07d}"
        accelerator.save_state(str(ckpt))
        # each process samples its own data: its own numpy RNG state
        (ckpt / f"rng_{accelerator.process_index}.json").write_text(json.dumps(rng.bit_generator.state))
        if accelerator.is_main_process:
            (ckpt / "run_state.json").write_text(json.dumps({"step": step, **self.extra}))
            (self.out / LATEST).write_text(ckpt.name)
            kept = sorted(self.out.glob("checkpoint-*"))
            for old in kept[: max(0, len(kept) - self.keep)]:
                shutil.rmtree(old)
        accelerator.wait_for_everyone()
        return ckpt

    def resume(self, accelerator: Accelerator, rng: np.random.Generator) -> int:
        latest = self.out / LATEST
        if not latest.is_file():
            return 0
        ckpt = self.out / latest.read_text().strip()
        accelerator.load_state(str(ckpt))
        state = json.loads((ckpt / "run_state.json").read_text())
        rng_file = ckpt / f"rng_{accelerator.process_index}.json"
        if not rng_file.is_file():
            raise FileNotFoundError(f"{rng_file}: resume with the number of processes the run was saved with")
        rng.bit_generator.state = json.loads(rng_file.read_text())
        return int(state["step"])


class Metrics:
    """metrics.jsonl, written by the main process only."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.file = path.open("a") if enabled else None

    def write(self, row: dict[str, Any]) -> None:
        if self.file is not None:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def make_accelerator(cfg: RunConfig) -> Accelerator:
    return Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                       cpu=cfg.cpu)


def to_model_device(batch: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    param = next(model.parameters())
    return {k: v.to(param.device, param.dtype) if v.is_floating_point() else v.to(param.device)
            for k, v in batch.items()}
