"""Training samples and their collation into model batches.

A sample is one observation plus the chunk of H actions that followed it, in physical units; collation
normalizes with the checkpoint's stats, pads state/actions to the head's maximum dims with a mask, and runs the
backbone's own processor, so training sees exactly what inference sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from vla_policy_node.model.vla import VLAModel
from vla_policy_node.spec.normalization import EmbodimentNormalization, NormalizationSet


@dataclass(frozen=True)
class Sample:
    images: dict[str, np.ndarray]  # camera name -> HxWx3 uint8 RGB
    state: np.ndarray  # [S] physical units, embodiment state order
    actions: np.ndarray  # [H, D] physical units
    instruction: str
    tag: str  # embodiment tag
    valid: np.ndarray | None = None  # [H] bool: False for steps padded past an episode's end
    # [E] privileged scene state for auxiliary training losses only (LeRobot's observation.environment_state,
    # e.g. the target object's position); never an input to the policy
    env_state: np.ndarray | None = None


class SampleDataset(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Sample: ...


def fit_normalization(samples: Sequence[Sample]) -> NormalizationSet:
    """Stats per embodiment tag from a list of samples (states, and every valid action step)."""
    by_tag: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for s in samples:
        states, actions = by_tag.setdefault(s.tag, ([], []))
        states.append(np.asarray(s.state, dtype=np.float64)[None])
        valid = np.ones(len(s.actions), bool) if s.valid is None else np.asarray(s.valid, bool)
        actions.append(np.asarray(s.actions, dtype=np.float64)[valid])
    return NormalizationSet(
        {tag: EmbodimentNormalization.fit(np.concatenate(st), np.concatenate(ac)) for tag, (st, ac) in by_tag.items()}
    )


def collate(samples: Sequence[Sample], model: VLAModel, normalization: NormalizationSet) -> dict[str, Any]:
    head = model.config.head
    b = len(samples)
    state = np.zeros((b, head.max_state_dim), np.float32)
    actions = np.zeros((b, head.horizon, head.max_action_dim), np.float32)
    mask = np.zeros((b, head.horizon, head.max_action_dim), bool)
    category = np.zeros(b, np.int64)
    images: list[list[np.ndarray]] = []
    for i, s in enumerate(samples):
        slot = model.slot(s.tag)
        norm = normalization[s.tag]
        if s.actions.shape != (head.horizon, slot.action_dim):
            raise ValueError(f"sample {i}: actions must be [{head.horizon}, {slot.action_dim}], got {s.actions.shape}")
        if s.state.shape != (slot.state_dim,):
            raise ValueError(f"sample {i}: state must have {slot.state_dim} values, got {s.state.shape}")
        state[i, : slot.state_dim] = norm.state.normalize(s.state)
        actions[i, :, : slot.action_dim] = norm.action.normalize(s.actions)
        valid = np.ones(head.horizon, bool) if s.valid is None else np.asarray(s.valid, bool)
        mask[i, valid, : slot.action_dim] = True
        category[i] = slot.index
        try:
            images.append([s.images[name] for name in slot.camera_names])
        except KeyError as exc:
            raise ValueError(f"sample {i}: missing camera {exc} (needs {slot.camera_names})") from exc
    inputs = model.backbone.prepare(images, [s.instruction for s in samples])
    batch = {
        "inputs": inputs,
        "state": torch.from_numpy(state),
        "actions": torch.from_numpy(actions),
        "action_mask": torch.from_numpy(mask),
        "category": torch.from_numpy(category),
    }
    aux = model.config.aux
    if aux is not None:
        batch["env_state"] = torch.from_numpy(_env_state(samples, aux.normalize, aux.dim))
    return batch


def _env_state(samples: Sequence[Sample], normalize: Any, dim: int) -> np.ndarray:
    """Normalized env state [B, E] for the aux probe; every sample must carry it, finite and of the probe's size."""
    out = np.zeros((len(samples), dim), np.float32)
    for i, s in enumerate(samples):
        if s.env_state is None:
            raise ValueError(f"sample {i}: the model's aux probe needs env_state (observation.environment_state), "
                             "and this sample has none")
        values = np.asarray(s.env_state, np.float64)
        if values.shape != (dim,) or not np.all(np.isfinite(values)):
            raise ValueError(f"sample {i}: env_state must be {dim} finite values, got {values}")
        out[i] = normalize(values)
    return out


def to_device(batch: Any, device: torch.device, dtype: torch.dtype | None = None) -> Any:
    """Move a (nested) batch to `device`; floating tensors also to `dtype` when given."""
    if torch.is_tensor(batch):
        batch = batch.to(device)
        return batch.to(dtype) if dtype is not None and batch.is_floating_point() else batch
    if isinstance(batch, dict):
        return {k: to_device(v, device, dtype) for k, v in batch.items()}
    return batch
