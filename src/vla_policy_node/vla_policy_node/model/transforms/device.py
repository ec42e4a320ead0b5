"""The device stage of the pipeline: a collated batch moves to the model's device, then batch steps run there.

Today its only step is `ToDevice`. Preprocessing on the accelerator plugs in at two places (issue 16):
- the batch step: `TransformPipeline.with_image_inputs(prepare)` leaves `ResizeImages` out and hands the frames
  as received to `prepare(images, instructions, camera_sizes)`, which fits, rescales, normalizes and patchifies
  them as tensors on the device (the fast path's `FastPath.prepare`, used by `VLAPolicy(fast_path=...)`);
- after collation: a step `Batch -> Batch` on tensors already on the GPU (e.g. decode -> resize -> normalize of
  frames a loader left as uint8) goes into `TransformPipeline.device_steps` and runs after `ToDevice`, in
  training and serving alike (`TransformPipeline.build(..., device_steps=...)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch

Batch = dict[str, Any]


class BatchTransform(Protocol):
    def __call__(self, batch: Batch) -> Batch: ...


def to_device(batch: Any, device: torch.device | str, dtype: torch.dtype | None = None) -> Any:
    """Move a (nested) batch to `device`; floating tensors also to `dtype` when given."""
    if torch.is_tensor(batch):
        batch = batch.to(device)
        return batch.to(dtype) if dtype is not None and batch.is_floating_point() else batch
    if isinstance(batch, Mapping):
        return {k: to_device(v, device, dtype) for k, v in batch.items()}
    return batch


@dataclass(frozen=True)
class ToDevice:
    """Every tensor to the model's device; floating ones (pixels, state, actions) to the head's dtype."""

    device: torch.device
    dtype: torch.dtype | None = None

    def __call__(self, batch: Batch) -> Batch:
        return to_device(batch, self.device, self.dtype)
