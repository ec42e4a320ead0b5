"""A minimal, resumable flow-matching trainer: AdamW, linear warmup + cosine decay (optionally held at the peak
until the last `decay_fraction` of the run: warmup-stable-decay), grad clipping.

Checkpoints are policy checkpoints (loadable by the node) plus the optimizer/scheduler/RNG state in
safetensors + JSON, so a run resumes exactly and nothing is pickled. Under a launcher (`parallel`,
train/distributed.py) each process takes its slice of the step's batch (the batches one process would draw),
gradients are averaged by DDP/FSDP, rank 0 writes the checkpoint and every other rank its RNG state (and, FSDP,
its optimizer shard) as rank-<r>.*: resume with the same number of processes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from vla_policy_node.model.checkpoint import load_weights, save_checkpoint
from vla_policy_node.model.transforms.pipeline import TransformPipeline
from vla_policy_node.model.vla_model import VLAModel
from vla_policy_node.spec.normalization import NormalizationSet
from vla_policy_node.train.data import SampleDataset, collate_samples
from vla_policy_node.train.distributed import Parallel

TRAINER_STATE = "trainer_state.json"
OPTIMIZER_STATE = "optimizer.safetensors"
LATEST = "latest"


@dataclass(frozen=True)
class TrainConfig:
    output_dir: str
    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-5
    betas: tuple[float, float] = (0.95, 0.999)
    warmup_steps: int = 50
    decay_fraction: float = 1.0  # the cosine decay spans this last fraction of the steps (1: all after warmup)
    grad_clip: float = 1.0
    log_every: int = 10
    save_every: int = 500
    keep_checkpoints: int = 2
    seed: int = 0
    device: str = "cpu"
    resume: bool = True
    progress: bool = True


def lr_factor(step: int, warmup: int, total: int, decay_fraction: float = 1.0) -> float:
    """Linear warmup to 1, then cosine decay to 0 at `total`; with decay_fraction < 1 the factor stays 1 until
    the decay's last `decay_fraction * total` steps (warmup-stable-decay: a feature learnt late, e.g. grounding,
    still has the full rate when it appears)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    begin = warmup if decay_fraction >= 1.0 else max(warmup, round(total * (1.0 - decay_fraction)))
    progress = min(1.0, max(0.0, step - begin) / max(1, total - begin))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class Trainer:
    def __init__(
        self, model: VLAModel, normalization: NormalizationSet, dataset: SampleDataset, config: TrainConfig,
        sample_weights: np.ndarray | None = None, parallel: Parallel | None = None,
    ) -> None:
        """sample_weights: relative probability of drawing each sample (default uniform), e.g. to show rare but
        decisive frames more often. parallel: this process' place among a launcher's (default: alone)."""
        if len(dataset) == 0:
            raise ValueError("cannot train on an empty dataset")
        self.sample_p: np.ndarray | None = None
        if sample_weights is not None:
            weights = np.asarray(sample_weights, np.float64)
            if weights.shape != (len(dataset),) or not np.all(np.isfinite(weights)) or np.any(weights < 0) \
                    or weights.sum() <= 0:
                raise ValueError(f"sample_weights must be {len(dataset)} finite non-negative values, not all 0")
            self.sample_p = weights / weights.sum()
        self.model = model
        self.normalization = normalization
        self.pipeline = TransformPipeline.from_model(model, normalization)  # the one VLAPolicy serves with
        self.dataset = dataset
        self.config = config
        self.out = Path(config.output_dir)
        self.device = torch.device(config.device)
        self.model.to(self.device)
        self.parallel = parallel or Parallel()
        self._loss = self.parallel.wrap(model)  # model.loss, or DDP/FSDP around it
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model has no trainable parameters")
        self.optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, config.warmup_steps, config.steps, config.decay_fraction)
        )
        self.step = 0
        self.loss_terms: dict[str, list[float]] = {}  # per-term losses of a multi-term model loss (logging)
        rank = self.parallel.rank
        self.rng = np.random.default_rng(config.seed)  # the same on every rank: see batch_indices
        torch.manual_seed(config.seed + rank)  # each rank's own noise for its own samples

    # --- state -----------------------------------------------------------------------------------------------
    def save(self) -> Path:
        """Write checkpoint-<step>/ (policy + trainer state), point `latest` at it, prune old ones."""
        ckpt = self.out / f"checkpoint-{self.step:07d}"
        main, par = self.parallel.is_main, self.parallel
        with par.full_params():
            if main:
                save_checkpoint(self.model, self.normalization, ckpt)
        par.barrier()  # the directory exists
        if main or par.sharded_optimizer:
            tensors, meta = _flatten_optimizer(self.optimizer.state_dict())
        else:
            tensors, meta = {}, None
        tensors["rng/torch"] = torch.get_rng_state()
        state = {"step": self.step, "optimizer": meta, "numpy_rng": self.rng.bit_generator.state}
        if main:
            save_file(tensors, str(ckpt / OPTIMIZER_STATE))
            state |= {"scheduler": self.scheduler.state_dict(), "config": asdict(self.config)}
            (ckpt / TRAINER_STATE).write_text(json.dumps(state, indent=2))
        else:
            save_file(tensors, str(ckpt / f"rank-{par.rank}.safetensors"))
            (ckpt / f"rank-{par.rank}.json").write_text(json.dumps(state))
        par.barrier()  # every rank's part is written
        if main:
            (self.out / LATEST).write_text(ckpt.name)
            kept = sorted(self.out.glob("checkpoint-*"))
            for old in kept[: max(0, len(kept) - self.config.keep_checkpoints)]:
                shutil.rmtree(old)
        par.barrier()
        return ckpt

    def try_resume(self) -> bool:
        latest = self.out / LATEST
        if not (self.config.resume and latest.is_file()):
            return False
        ckpt = self.out / latest.read_text().strip()
        state = json.loads((ckpt / TRAINER_STATE).read_text())
        with self.parallel.full_params(writeback=True):
            load_weights(self.model, ckpt / "model.safetensors")
        self.model.to(self.device)
        tensors = load_file(str(ckpt / OPTIMIZER_STATE))
        meta = state["optimizer"]
        if not self.parallel.is_main:
            own = ckpt / f"rank-{self.parallel.rank}.json"
            if not own.is_file():
                raise FileNotFoundError(f"{own} missing: resume with the number of processes that saved {ckpt}")
            rank_state = json.loads(own.read_text())
            rank_tensors = load_file(str(ckpt / f"rank-{self.parallel.rank}.safetensors"))
            state["numpy_rng"] = rank_state["numpy_rng"]
            if self.parallel.sharded_optimizer:
                tensors, meta = rank_tensors, rank_state["optimizer"]
            tensors["rng/torch"] = rank_tensors["rng/torch"]
        torch.set_rng_state(tensors.pop("rng/torch"))
        self.optimizer.load_state_dict(_unflatten_optimizer(tensors, meta))
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.bit_generator.state = state["numpy_rng"]
        self.step = int(state["step"])
        return True

    # --- loop ------------------------------------------------------------------------------------------------
    def train_step(self) -> float:
        self.model.train()
        batch = collate_samples([self.dataset[int(i)] for i in self.batch_indices()], self.pipeline)
        dtype = next(self.model.head.parameters()).dtype
        batch = self.pipeline.to_device(batch, self.device, dtype)
        loss = self._loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {self.step}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.parallel.clip_grad_norm([p for g in self.optimizer.param_groups for p in g["params"]],
                                     self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        terms = getattr(self.model, "last_loss_terms", None)
        if terms and len(terms) > 1:
            for name, value in terms.items():
                self.loss_terms.setdefault(name, []).append(value)
        return float(loss.item())

    def batch_indices(self) -> np.ndarray:
        """The samples of this process's share of the next step. Every rank draws the whole step's batch
        (batch_size x world size) from the same generator and keeps its slice: a launched run trains on the
        batches one process with the whole batch would draw, so its data order does not depend on how many
        processes share the work."""
        size, par = self.config.batch_size, self.parallel
        total = size * par.world_size
        if self.sample_p is None:
            idx = self.rng.integers(0, len(self.dataset), size=total)
        else:
            idx = self.rng.choice(len(self.dataset), size=total, p=self.sample_p)
        return idx[par.rank * size:(par.rank + 1) * size]

    def train(self, until: int | None = None) -> list[float]:
        """Run to `config.steps` (or stop early at step `until`, e.g. a time-boxed job; the schedule still spans
        `config.steps`, so a later resume continues the same run). Returns this call's per-step losses."""
        stop = self.config.steps if until is None else min(until, self.config.steps)
        main = self.parallel.is_main
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.parallel.barrier()
        self.try_resume()
        losses: list[float] = []
        metrics = (self.out / "metrics.jsonl").open("a") if main else open(os.devnull, "w")  # noqa: SIM115
        bar = tqdm(total=self.config.steps, initial=self.step, disable=not (self.config.progress and main),
                   desc="train")
        start = time.perf_counter()
        try:
            while self.step < stop:
                loss = self.train_step()
                losses.append(loss)
                bar.update(1)
                if self.step % self.config.log_every == 0 or self.step == stop:
                    recent = float(np.mean(losses[-self.config.log_every:]))
                    bar.set_postfix(loss=f"{recent:.4f}")
                    metrics.write(json.dumps({
                        "step": self.step, "loss": recent, "lr": self.scheduler.get_last_lr()[0],
                        **{k: float(np.mean(v[-self.config.log_every:])) for k, v in self.loss_terms.items()},
                        "elapsed_s": round(time.perf_counter() - start, 3),
                    }) + "\n")
                    metrics.flush()
                if self.step % self.config.save_every == 0 or self.step in (stop, self.config.steps):
                    self.save()
        finally:
            bar.close()
            metrics.close()
        return losses


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state_dict -> (tensors for safetensors, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"state/{idx}/{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split("/", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, entry in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(entry)
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else dict(g) for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}
